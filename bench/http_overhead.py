"""The local endpoint on loopback against the in-process handler, same 1-row JSON request.

- latency: a sequential client in another process (bench._seq_client) alternates,
  request by request, a POST over a fresh loopback connection to
  `LocalEndpoint(workers=1)` and an in-process `handler.invoke`. Target: HTTP p50 <=
  1.30x the in-process p50 of the same run (issue 22 made the former "adds <= 1 ms" a
  ratio: 1 ms over the 3.4 ms floor it was set on). The HTTP time includes TCP connect (each request says
  `Connection: close`) and the client's own socket calls. wrk -t1 -c1 --latency p50
  (which starts its clock after connect) is reported as a cross-check.
- throughput: wrk -t1 -cN against `LocalEndpoint(workers=N)`, N = 1 and 2, against
  N ÷ handler time, where the floor is N processes (bench._handler_loop) calling the
  handler in a loop at the same time for as long as wrk runs, so that a core taken by
  someone else costs both alike. Target: >= 80 %. Alternated, order flipped each
  round; medians over rounds. The share against N ÷ single-process handler time and
  CPU time per request (server from /proc, wrk from rusage) are in the details.

    python -m bench.http_overhead
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._common import (
    JSON_TYPE,
    ROOT,
    Result,
    block_ratios,
    feature_rows,
    json_body,
    load_sample_handler,
    main_for,
    median,
    ms,
    run_wrk,
    sample_model,
    spread,
    wrk_script,
)

CLIENT_SECONDS = 8
ROUNDS = 7
WRK_SECONDS = 1
P50_TARGET = 1.30  # HTTP p50 ÷ in-process p50
THROUGHPUT_TARGET = 0.8


def sequential_client(port: int) -> dict[str, list[float]]:
    done = subprocess.run([sys.executable, "-m", "bench._seq_client", str(port), str(CLIENT_SECONDS)],
                          cwd=ROOT, capture_output=True, text=True, timeout=CLIENT_SECONDS + 120)
    if done.returncode != 0:
        raise RuntimeError(f"bench._seq_client failed ({done.returncode}): {done.stdout[-500:]}{done.stderr[-2000:]}")
    return json.loads(done.stdout)


class HandlerLoops:
    """N processes that each call the handler in a loop when told to, all at once."""

    def __init__(self, n: int):
        self.processes = [subprocess.Popen([sys.executable, "-m", "bench._handler_loop"], cwd=ROOT, text=True,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(n)]
        for process in self.processes:
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("bench._handler_loop did not start")

    def run(self, seconds: float) -> tuple[float, float, float]:
        """Calls per second (all processes), median wall time and CPU time per call."""
        for process in self.processes:
            process.stdin.write(f"go {seconds}\n")
            process.stdin.flush()
        replies = [process.stdout.readline().split() for process in self.processes]
        calls = [(int(c), float(e), float(cpu)) for c, e, cpu in replies]
        rate = sum(c / e for c, e, _ in calls)
        return rate, median([e / c for c, e, _ in calls]), median([cpu / c for c, _, cpu in calls])

    def close(self) -> None:
        for process in self.processes:
            process.stdin.close()
            process.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants: `endpointctl serve` runs the
    server in a sandboxed child, whose gunicorn master forks the workers."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
        try:
            pending += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:  # gone since, or a kernel without CONFIG_PROC_CHILDREN
            pass
    return total


def _wrk_with_cpu(endpoint, script: Path, connections: int) -> dict:
    server_before = _cpu_seconds(endpoint.process.pid)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = run_wrk(endpoint.url, script, threads=1, connections=connections, seconds=WRK_SECONDS)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats["server_cpu"] = (_cpu_seconds(endpoint.process.pid) - server_before) / stats["requests"]
    stats["wrk_cpu"] = ((children_after.ru_utime + children_after.ru_stime)
                        - (children_before.ru_utime + children_before.ru_stime)) / stats["requests"]
    return stats


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-http-") as workdir:
        return _run(Path(workdir))


def _run(workdir: Path) -> list[Result]:
    from endpointctl.invoke import post_local
    from endpointctl.local import LocalEndpoint

    archive, _ = sample_model()
    handler = load_sample_handler()
    body = json_body(feature_rows(1))
    expected = handler.invoke(body, JSON_TYPE, JSON_TYPE)[0].encode()
    del handler

    script = wrk_script(workdir, body, JSON_TYPE, JSON_TYPE)
    rounds: dict[int, list[dict]] = {1: [], 2: []}
    loops = {n: HandlerLoops(n) for n in (1, 2)}
    try:
        with LocalEndpoint(model_data=archive, workers=1) as one, LocalEndpoint(model_data=archive, workers=2) as two:
            endpoints = {1: one, 2: two}
            for endpoint in (one, two):
                status, _, payload = post_local(endpoint.url, body.encode(), JSON_TYPE, JSON_TYPE)
                assert status == 200 and payload == expected, (status, payload[:200])
                run_wrk(endpoint.url, script, threads=1, connections=1, seconds=1)  # warm up
            latency = sequential_client(one.port)
            for i in range(ROUNDS):
                for n in (1, 2):
                    r: dict = {}
                    steps = [lambda: r.update(floor=loops[n].run(WRK_SECONDS)),
                             lambda: r.update(wrk=_wrk_with_cpu(endpoints[n], script, n))]
                    for step in (steps if i % 2 == 0 else steps[::-1]):
                        step()
                    rounds[n].append(r)
    finally:
        for loop in loops.values():
            loop.close()

    http_p50, inproc_p50 = median(latency["http"]), median(latency["inproc"])
    added = http_p50 - inproc_p50
    blocks = block_ratios(latency["http"], latency["inproc"])
    wrk1 = rounds[1]
    wrk_added = median([r["wrk"]["p50"] - r["floor"][1] for r in wrk1])
    results = [
        Result("HTTP p50, 1-row JSON (sequential client, new connection each)", ms(http_p50), ms(inproc_p50),
               f"{http_p50 / inproc_p50:.2f}×", f"≤ {P50_TARGET:.2f}×", http_p50 / inproc_p50 <= P50_TARGET, [
                   f"HTTP adds {ms(added)} at p50; {len(latency['http'])} requests alternated with as many in-process calls over {CLIENT_SECONDS}s; "
                   f"p90 HTTP {ms(sorted(latency['http'])[len(latency['http']) * 9 // 10])}; "
                   f"HTTP/in-process ratio over 5 blocks {spread(blocks)}",
               ]),
        Result("HTTP p50, 1-row JSON (wrk -t1 -c1, excl. connect)", ms(median([r["wrk"]["p50"] for r in wrk1])),
               ms(median([r["floor"][1] for r in wrk1])), f"{'+' if wrk_added >= 0 else '−'}{ms(abs(wrk_added))}", "— (cross-check)", None, [
                   f"{ROUNDS} rounds of {WRK_SECONDS}s; per-round wrk p50 − in-process median: "
                   + ", ".join(ms(r["wrk"]["p50"] - r["floor"][1]) for r in wrk1),
               ]),
    ]
    for n in (1, 2):
        rs = rounds[n]
        shares = [r["wrk"]["rps"] / r["floor"][0] for r in rs]
        share = median(shares)
        single = median([r["wrk"]["rps"] / (n / median([q["floor"][1] for q in rounds[1]])) for r in rs])
        results.append(Result(
            f"throughput, {n} worker{'s' if n > 1 else ''} at concurrency {n} (wrk -t1 -c{n})",
            f"{median([r['wrk']['rps'] for r in rs]):.0f} req/s",
            f"{median([r['floor'][0] for r in rs]):.0f} req/s ({n} handler loop{'s' if n > 1 else ''})",
            f"{share:.1%}", f"≥ {THROUGHPUT_TARGET:.0%}", share >= THROUGHPUT_TARGET,
            ["per-round share: " + ", ".join(f"{s:.0%}" for s in shares)
             + f"; against N ÷ single-process handler time instead: {single:.0%}"
             + f"; wrk p50 at -c{n}: {ms(median([r['wrk']['p50'] for r in rs]))}",
             f"CPU per request: server (master + workers) {ms(median([r['wrk']['server_cpu'] for r in rs]))}, "
             f"wrk {ms(median([r['wrk']['wrk_cpu'] for r in rs]))}; handler in the loop "
             f"{ms(median([r['floor'][2] for r in rs]))}"],
        ))
    return results


if __name__ == "__main__":
    main_for(run)
