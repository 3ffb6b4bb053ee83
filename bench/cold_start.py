"""Cold start: what callers feel, the time to the first 200 from /ping.

Target: in the sklearn image's own serving stack (nginx + gunicorn gevent + the image's
app on Python 3.9, started as tests/image_serving/image_stack.py starts it), our handler
<= 1.05x the image's default handler (bench/image_default_inference.py, only model_fn).
The image loads the model on a worker's first request, /ping included, so this is the
handler's import and model_fn on top of the image's own start. Each run: start the stack
(unpack the model, render nginx's config, start gunicorn and nginx) and poll /ping every
2 ms until 200; alternated, order flipped each round, after one untimed run of each.

Information, no target (issue 22: the local endpoint pays for the sandbox on purpose):
`python -m endpointctl serve --model-data model.tar.gz --workers 1`, as LocalEndpoint
runs it, against a bare `python -c "import numpy, sklearn, joblib; joblib.load(...)"`
until it prints that the model is loaded (its interpreter teardown is not counted).

    python -m bench.cold_start
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import ROOT, Result, main_for, median, sample_model, spread
from bench.image_serving import HANDLERS

ROUNDS = 7
TARGET = 1.05  # ours ÷ the image's default handler, in the image's stack
POLL_S = 0.002


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
    with LocalEndpoint(model_data=archive, workers=1, poll_interval=POLL_S):
        return time.perf_counter() - start


def image_stack_once(handler: str, archive: Path, tmp: Path) -> float:
    """The image's stack with `handler`, from the first process started to the first 200
    from /ping; the code archive is built before the clock starts."""
    from tests.image_serving.image_stack import code_archive_for, start_image_server

    workdir = Path(tempfile.mkdtemp(dir=tmp))
    code = code_archive_for(HANDLERS[handler], workdir)
    start = time.perf_counter()
    stack = start_image_server(archive, code, workdir, workers=1, poll_interval=POLL_S)
    elapsed = time.perf_counter() - start
    stack.stop()
    return elapsed


def alternated(first, second) -> tuple[list[float], list[float]]:
    """ROUNDS runs of each, order flipped each round, after one untimed run of each."""
    first(), second()
    ones, twos = [], []
    for i in range(ROUNDS):
        steps = [lambda: ones.append(first()), lambda: twos.append(second())]
        for step in (steps if i % 2 == 0 else steps[::-1]):
            step()
    return ones, twos


def image_stack_result(archive: Path) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as folder:
        tmp = Path(folder)
        ours, default = alternated(lambda: image_stack_once("ours", archive, tmp),
                                   lambda: image_stack_once("image default", archive, tmp))
    measured, floor = median(ours), median(default)
    return Result(
        "cold start in the image's stack → first 200 from /ping (1 worker): ours vs image default",
        f"{measured * 1e3:.0f} ms", f"{floor * 1e3:.0f} ms (image default)", f"{measured / floor:.2f}×",
        f"≤ {TARGET}×", measured / floor <= TARGET,
        [f"{ROUNDS} alternated rounds; ours {', '.join(f'{s * 1e3:.0f}' for s in ours)} ms; image default "
         f"{', '.join(f'{f * 1e3:.0f}' for f in default)} ms; per-round ratio "
         f"{spread([s / f for s, f in zip(ours, default)])}; /ping polled every {POLL_S * 1e3:.0f} ms"],
    )


def local_serve_result(archive: Path, model_dir: Path) -> Result:
    floors, servers = alternated(lambda: floor_once(model_dir), lambda: server_once(archive))
    measured, floor = median(servers), median(floors)
    return Result(
        "local `serve` cold start → first 200 from /ping (1 worker, sandboxed)", f"{measured * 1e3:.0f} ms",
        f"{floor * 1e3:.0f} ms (bare model load)", f"{measured / floor:.2f}×", "— (info; the sandbox, on purpose)", None,
        [f"{ROUNDS} alternated rounds; server {', '.join(f'{s * 1e3:.0f}' for s in servers)} ms; "
         f"floor {', '.join(f'{f * 1e3:.0f}' for f in floors)} ms; per-round ratio "
         f"{spread([s / f for s, f in zip(servers, floors)])}; model.tar.gz {archive.stat().st_size:,} bytes",
         *startup_costs()],
    )


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
    return [image_stack_result(archive), local_serve_result(archive, model_dir)]


if __name__ == "__main__":
    main_for(run)
