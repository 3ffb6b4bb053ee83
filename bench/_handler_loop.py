"""A process that calls the in-process handler in a loop on command, for
bench.http_overhead's throughput floor (N of them run at once for N workers).

    python -m bench._handler_loop     # prints "ready"; then, per line "go SECONDS",
                                      # prints "CALLS ELAPSED CPU_SECONDS"
"""

from __future__ import annotations

import sys
import time

from bench._common import JSON_TYPE, feature_rows, json_body, load_sample_handler


def main() -> None:
    handler = load_sample_handler()
    body = json_body(feature_rows(1))
    for _ in range(20):
        handler.invoke(body, JSON_TYPE, JSON_TYPE)
    print("ready", flush=True)
    for line in sys.stdin:
        seconds = float(line.split()[1])
        clock = time.perf_counter
        cpu, start = time.process_time(), clock()
        deadline = start + seconds
        calls = 0
        while clock() < deadline:
            handler.invoke(body, JSON_TYPE, JSON_TYPE)
            calls += 1
        print(calls, clock() - start, time.process_time() - cpu, flush=True)


if __name__ == "__main__":
    main()
