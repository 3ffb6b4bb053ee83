"""Cold start: process start -> first 200 from /ping, against a bare interpreter that
imports numpy, scikit-learn and joblib and loads the model. Target: <= 1.2x.

Measured: `python -m endpointctl serve --model-data model.tar.gz --workers 1` (what
LocalEndpoint starts; it unpacks the archive, imports the handler, loads the model
and only then binds), as `LocalEndpoint` runs it, polled every 2 ms on a free loopback port.
Floor: `python -c "import numpy, sklearn, joblib; joblib.load('<model dir>/model.joblib')"`,
until it prints that the model is loaded (its interpreter teardown is not counted).
Both in subprocesses, alternated (order flipped each round), after one untimed run
of each so both start from a warm page cache.

    python -m bench.cold_start
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench._common import ROOT, Result, main_for, median, sample_model, spread

ROUNDS = 7
TARGET = 1.2


def floor_once(model_dir) -> float:
    """Until the loaded model is reported on stdout: the interpreter's exit is not counted."""
    code = (f"import numpy, sklearn, joblib; joblib.load({str(model_dir / 'model.joblib')!r}); "
            "print('loaded', flush=True)")
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE)
    line = process.stdout.readline()
    elapsed = time.perf_counter() - start
    process.stdout.close()
    if process.wait() != 0 or line.strip() != b"loaded":
        raise RuntimeError(f"the floor interpreter failed ({process.returncode}): {line!r}")
    return elapsed


def server_once(archive) -> float:
    from endpointctl.local import LocalEndpoint

    start = time.perf_counter()
    with LocalEndpoint(model_data=archive, workers=1, poll_interval=0.002):
        return time.perf_counter() - start


def startup_costs() -> list[str]:
    """What the server pays that the floor does not, each timed alone (median of 5):
    one bare interpreter (serve runs two: endpointctl, which fetches and holds the
    socket, and the sandboxed child that loads the model) and gevent's monkey-patching
    in the worker, plain and as our worker runs it (installed distributions read once)."""
    def timed(code: str) -> float:
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
            runs.append(time.perf_counter() - start)
        return median(runs)

    bare = timed("pass")
    importing = timed("import gevent.monkey, serving_runtime.container") - bare
    plain = timed("import serving_runtime.container; from gevent import monkey; monkey.patch_all()") - bare - importing
    ours = timed("from serving_runtime.container import _entry_points_read_once; from gevent import monkey\n"
                 "with _entry_points_read_once(): monkey.patch_all()") - bare - importing
    from importlib import metadata

    return [f"measured alone: a bare interpreter {bare * 1e3:.0f} ms (serve starts two before the model loads); "
            f"gevent's monkey.patch_all {plain * 1e3:.0f} ms (it reads the entry points of all "
            f"{len(list(metadata.distributions()))} installed distributions some 25 times), {ours * 1e3:.0f} ms "
            "as our worker runs it (read once)"]


def run() -> list[Result]:
    archive, model_dir = sample_model()
    floor_once(model_dir)
    server_once(archive)
    floors, servers = [], []
    for i in range(ROUNDS):
        if i % 2 == 0:
            floors.append(floor_once(model_dir))
            servers.append(server_once(archive))
        else:
            servers.append(server_once(archive))
            floors.append(floor_once(model_dir))
    measured, floor = median(servers), median(floors)
    ratio = measured / floor
    pair_ratios = [s / f for s, f in zip(servers, floors)]
    return [Result(
        "cold start → first 200 from /ping (1 worker)", f"{measured * 1e3:.0f} ms", f"{floor * 1e3:.0f} ms",
        f"{ratio:.2f}×", f"≤ {TARGET}×", ratio <= TARGET,
        [f"{ROUNDS} alternated rounds; server {', '.join(f'{s * 1e3:.0f}' for s in servers)} ms; "
         f"floor {', '.join(f'{f * 1e3:.0f}' for f in floors)} ms; per-round ratio "
         f"{spread(pair_ratios)}; model.tar.gz {archive.stat().st_size:,} bytes", *startup_costs()],
    )]


if __name__ == "__main__":
    main_for(run)
