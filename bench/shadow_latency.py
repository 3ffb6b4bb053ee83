"""What a shadow costs the caller: `serve --shadow-model-data` against the same champion
without a shadow, both capturing, same 1-row JSON request (issue 20, item 5).

Three local endpoints run at once, all on the sample model with `--capture`: the floor
(no shadow), one whose challenger is hung (its processes stopped with SIGSTOP: every
copy waits forever, the worst a sleeping model can do), and one whose challenger cannot
load its model (every copy fails). A client in this process alternates requests across
the three, request by request, over fresh loopback connections, so the machine's noise
hits all alike. Reported: p50 and p99 of each; target p50 within +10 % of the floor.
The answers are compared too: a shadow must never change one.

    python -m bench.shadow_latency
"""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from bench._common import Result, feature_rows, main_for, median, ms, sample_model

SECONDS = 12
P50_TARGET = 1.10


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _post(url: str, body: bytes) -> tuple[float, bytes]:
    request = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Connection": "close"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = response.read()
    return time.perf_counter() - started, answer


def _broken_archive(folder: Path) -> Path:
    """A model.tar.gz whose model.joblib is not a pickle: the challenger cannot load it."""
    path = folder / "broken.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        data = b"not a pickle"
        info = tarfile.TarInfo("model.joblib")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def run() -> list[Result]:
    from endpointctl.local import Capture, LocalEndpoint, ShadowServing
    from endpointctl.training import write_sample_model

    model, _ = sample_model()
    body = json.dumps({"instances": feature_rows(1).tolist()}).encode()
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as scratch, ExitStack() as stack:
        folder = Path(scratch)
        challenger = write_sample_model(folder / "challenger.tar.gz", rows=3000, seed=8)
        setups = {"no shadow (floor)": None, "hung challenger": ShadowServing(str(challenger), "Challenger", 100),
                  "failing challenger": ShadowServing(str(_broken_archive(folder)), "Challenger", 100)}
        endpoints = {name: stack.enter_context(LocalEndpoint(
            model_data=model, capture=Capture(str(folder / f"capture-{i}"), "local-endpoint", "AllTraffic"), shadow=shadow))
            for i, (name, shadow) in enumerate(setups.items())}
        hung = endpoints["hung challenger"]
        deadline = time.monotonic() + 30
        while not hung.challenger_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        frozen = hung.challenger_pids()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            times, answers = _measure(endpoints, body)
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
    return _results(times, answers, load=os.getloadavg())


def _measure(endpoints: dict, body: bytes) -> tuple[dict[str, list[float]], dict[str, set[bytes]]]:
    times: dict[str, list[float]] = {name: [] for name in endpoints}
    answers: dict[str, set[bytes]] = {name: set() for name in endpoints}
    for endpoint in endpoints.values():  # warm each once
        _post(endpoint.url, body)
    deadline = time.monotonic() + SECONDS
    round_number = 0
    while time.monotonic() < deadline:
        order = list(endpoints.items())
        for name, endpoint in (order if round_number % 2 == 0 else order[::-1]):
            elapsed, answer = _post(endpoint.url, body)
            times[name].append(elapsed)
            answers[name].add(answer)
        round_number += 1
    return times, answers


def _results(times: dict[str, list[float]], answers: dict[str, set[bytes]], *, load) -> list[Result]:
    floor_name = "no shadow (floor)"
    floor = times[floor_name]
    results = []
    for name in ("hung challenger", "failing challenger"):
        ratio = median(times[name]) / median(floor)
        same = answers[name] == answers[floor_name]
        results.append(Result(
            f"shadow latency, {name} (p50 / p99, 1-row JSON)",
            f"{ms(median(times[name]))} / {ms(_percentile(times[name], 0.99))}",
            f"{ms(median(floor))} / {ms(_percentile(floor, 0.99))}",
            f"{ratio:.2f}x p50", f"p50 ≤ {P50_TARGET:.2f}x, same answers", ratio <= P50_TARGET and same,
            [f"{len(times[name])} requests each, interleaved; answers identical to the floor's: {same}; "
             f"load average during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"],
        ))
    return results


if __name__ == "__main__":
    main_for(run)
