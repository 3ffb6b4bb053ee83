"""A sequential client for bench.http_overhead, run in its own process.

    python -m bench._seq_client PORT SECONDS

Alternates, request by request, one POST /invocations over a fresh loopback
connection (raw socket: connect, send, read to close; the request says
`Connection: close`, as the gevent workers otherwise keep it alive for 3 s) and one
in-process `handler.invoke` of the same 1-row JSON request, so the machine's noise
hits both alike. Prints {"http": [...], "inproc": [...]} in
seconds.
"""

from __future__ import annotations

import json
import socket
import sys
import time

from bench._common import JSON_TYPE, feature_rows, json_body, load_sample_handler


def main() -> None:
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    handler = load_sample_handler()
    body = json_body(feature_rows(1))
    expected = handler.invoke(body, JSON_TYPE, JSON_TYPE)[0].encode()
    data = body.encode()
    request = (b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: %d\r\n\r\n" % len(data)) + data
    clock = time.perf_counter

    def over_http() -> float:
        start = clock()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        sock.close()
        elapsed = clock() - start
        response = b"".join(chunks)
        if not response.startswith(b"HTTP/1.1 200") or not response.endswith(expected):
            sys.exit(f"unexpected response: {response[:300]!r}")
        return elapsed

    def in_process() -> float:
        start = clock()
        handler.invoke(body, JSON_TYPE, JSON_TYPE)
        return clock() - start

    for _ in range(20):  # warm up both
        over_http()
        in_process()
    out: dict[str, list[float]] = {"http": [], "inproc": []}
    deadline = clock() + seconds
    turn = 0
    while clock() < deadline or turn < 40:
        if turn % 2 == 0:
            out["http"].append(over_http())
            out["inproc"].append(in_process())
        else:
            out["inproc"].append(in_process())
            out["http"].append(over_http())
        turn += 1
    print(json.dumps(out))


if __name__ == "__main__":
    main()
