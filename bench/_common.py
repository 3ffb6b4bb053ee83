"""Shared pieces of the benchmarks: the sample model, requests, interleaved timing, wrk.

House rule: speed is measured against a floor measured in the same run, interleaved
with it, so the machine's noise hits both alike; results are ratios.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "fraud-endpoint-bench"
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"


# ------------------------------------------------------------------------ results


@dataclass
class Result:
    benchmark: str
    measured: str
    floor: str
    ratio: str
    target: str
    passed: bool | None  # None: informational row, no target
    details: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else ("pass" if self.passed else "**FAIL**")


def table(results: list[Result]) -> str:
    lines = ["| benchmark | measured | floor | ratio | target | result |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.benchmark} | {r.measured} | {r.floor} | {r.ratio} | {r.target} | {r.verdict} |")
    return "\n".join(lines)


def print_results(results: list[Result]) -> None:
    print(f"machine: {machine()}")
    print(table(results))
    for r in results:
        for line in r.details:
            print(f"  [{r.benchmark}] {line}")


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import numpy
    import sklearn

    return (f"{model}, {os.cpu_count()} cores ({usable} usable), Python {platform.python_version()}, "
            f"numpy {numpy.__version__}, scikit-learn {sklearn.__version__}, {platform.system()} {platform.release()}")


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def ms(seconds: float) -> str:
    value = seconds * 1e3
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


# -------------------------------------------------------------- model and requests


def sample_model() -> tuple[Path, Path]:
    """The project's sample model (model.tar.gz, unpacked model dir), built once and
    cached by the source of the code that builds it."""
    import sklearn

    import serving_runtime.bundle
    from endpointctl import training
    from serving_runtime.archive import unpack_model
    from endpointctl.training import write_sample_model

    # Keyed on the modules that write the model (found from the modules, so a move
    # cannot leave the key hashing a file that no longer exists).
    digest = hashlib.sha256(sklearn.__version__.encode())
    for module in (training, serving_runtime.bundle):
        digest.update(Path(module.__file__).read_bytes())
    target = CACHE / f"model-{digest.hexdigest()[:16]}"
    if not (target / "model" / "model.joblib").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=CACHE, prefix="building-"))
        write_sample_model(staging / "model.tar.gz")
        unpack_model(staging / "model.tar.gz", staging / "model")
        try:
            os.replace(staging, target)
        except OSError:  # another run got there first
            shutil.rmtree(staging, ignore_errors=True)
    return target / "model.tar.gz", target / "model"


def load_sample_handler():
    from serving_config.paths import HANDLER_DIR
    from serving_runtime.loader import load_handler

    _, model_dir = sample_model()
    return load_handler(model_dir, HANDLER_DIR)


def feature_rows(rows: int, seed: int = 11):
    from endpointctl.training import synthetic_transactions

    features, _ = synthetic_transactions(rows, seed)
    return features


def json_body(rows) -> str:
    return json.dumps({"instances": rows.tolist()})


def csv_body(rows) -> str:
    """One record per line, no header, no trailing newline; floats as Python prints them."""
    return "\n".join(",".join(map(repr, row)) for row in rows.tolist())


# ----------------------------------------------------------------------- timing


def interleaved(calls: dict[str, Callable[[], object]], *, seconds: float, min_rounds: int = 10,
                warmup: int = 3, cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Time each call once per round, all in the same round, order reversed every
    other round, until `seconds` have passed (at least `min_rounds`). With `cpu`, also
    record each call's CPU time in this thread there: on a loaded machine the wall
    clock counts time spent waiting for a core, the thread's CPU time does not."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    if cpu is not None:
        cpu.update({name: [] for name in names})
    clock, cpu_clock = time.perf_counter, time.thread_time
    deadline = clock() + seconds
    rounds = 0
    while rounds < min_rounds or clock() < deadline:
        for name in (names if rounds % 2 == 0 else reversed(names)):
            call = calls[name]
            cpu_start = cpu_clock()
            start = clock()
            call()
            samples[name].append(clock() - start)
            if cpu is not None:
                cpu[name].append(cpu_clock() - cpu_start)
        rounds += 1
    return samples


def median(values) -> float:
    return statistics.median(values)


def block_ratios(measured: list[float], floor: list[float], blocks: int = 5) -> list[float]:
    """Ratio of medians in consecutive blocks of paired samples: how much it wanders."""
    n = min(len(measured), len(floor))
    size = max(n // blocks, 1)
    out = []
    for start in range(0, n - size + 1, size):
        out.append(median(measured[start:start + size]) / median(floor[start:start + size]))
    return out


def spread(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}–{max(ratios):.2f}×"


# -------------------------------------------------------------------------- wrk

_LUA = """\
-- POST one body from a file to /invocations; print a JSON summary when done.
local f = assert(io.open({path}, "rb"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = {content_type}
wrk.headers["Accept"] = {accept}

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_script(workdir: Path, body: str | bytes, content_type: str, accept: str) -> Path:
    data = body.encode("utf-8") if isinstance(body, str) else body
    body_path = workdir / "body"
    body_path.write_bytes(data)
    script = workdir / "post.lua"
    script.write_text(_LUA.format(path=json.dumps(str(body_path)), content_type=json.dumps(content_type),
                                  accept=json.dumps(accept)))
    return script


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    return path


def run_wrk(url: str, script: Path, *, threads: int, connections: int, seconds: int) -> dict:
    """wrk against POST /invocations; requests/s and latency percentiles (seconds)."""
    command = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
               "--timeout", "30s", "-s", str(script), f"{url}/invocations"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    stats = json.loads(line.removeprefix("BENCH_JSON "))
    errors = {k: stats[k] for k in ("connect", "read", "write", "status", "timeout") if stats[k]}
    if errors:
        raise RuntimeError(f"wrk saw errors {errors}:\n{done.stdout}")
    return {
        "requests": stats["requests"],
        "rps": stats["requests"] / (stats["duration_us"] / 1e6),
        "p50": stats["p50_us"] / 1e6,
        "p90": stats["p90_us"] / 1e6,
        "p99": stats["p99_us"] / 1e6,
    }


def main_for(run: Callable[[], list[Result]]) -> None:
    """`python -m bench.<name>`: run one benchmark and print its rows (RESULTS.md is
    written by `python -m bench.run_all`). Exit 0 whatever the verdicts: a benchmark
    reports, it does not assert."""
    started = time.perf_counter()
    results = run()
    print_results(results)
    print(f"({time.perf_counter() - started:.0f}s)")
