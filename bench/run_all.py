"""Run every benchmark and (re)write bench/RESULTS.md.

    python -m bench.run_all            # from the project root (or `make bench`)

Each benchmark also runs alone: python -m bench.handler_cost (http_overhead,
cold_start, batch_transform, image_serving, release_plan, shadow_latency, monitor). They report, they do not assert: the exit code is 0
whatever the verdicts, non-zero only if a benchmark could not run.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

from bench._common import ROOT, Result, machine, now_utc, table

MODULES = ["handler_cost", "http_overhead", "cold_start", "batch_transform", "image_serving", "release_plan", "shadow_latency", "monitor"]
RESULTS_MD = ROOT / "bench" / "RESULTS.md"

METHOD = """\
## Method

Every ratio is against a floor measured in the same run, interleaved with the
measurement so the machine's noise hits both alike; medians throughout. Ratios are
measured ÷ floor for times, measured ÷ floor (as a share) for rates.

- **handler_cost**: `LoadedHandler.invoke(body, content_type, accept)` (input_fn →
  predict_fn → output_fn, in process) on the sample model from
  `endpointctl.training.write_sample_model`, against `model.predict_proba` on the
  already-parsed rows, alternated call by call. The handler's parts are timed in the
  same rounds, wall clock and this thread's CPU time (details; on a loaded machine the
  CPU-time ratio is the steadier). Target ≤ 1.25× for 1-row JSON. 10,000-row CSV is
  answered as text/csv; the same rounds time `float()` of every field and `repr()` of
  every probability, what any handler that keeps the values bit for bit pays: exact
  text wins over speed, so its target is ≤ 1.10× that bound (model + float() + repr(),
  CPU), and its ratio to `predict_proba` alone is information.
- **http_overhead**: `LocalEndpoint` (gunicorn, gevent workers as in the container) on
  loopback. p50: a sequential raw-socket client in another process alternates one HTTP
  request (new connection each, `Connection: close`) with one in-process
  invoke; target: HTTP p50 ≤ 1.30× the in-process p50. Throughput: `wrk -t1 -cN` with a Lua POST script against N workers,
  alternated with N processes calling the handler in a loop at once for as long
  (N ÷ handler time, under the same contention; the share against a single process's
  handler time is in the details, with CPU time per request of server and wrk).
- **cold_start**: what callers feel, in the image's own serving stack (as image_serving
  starts it): from the first process started to the first 200 from `/ping` (polled every
  2 ms; the image loads the model on that first request), our handler against the
  image's default handler, alternated; target ≤ 1.05×. For information, the local
  `python -m endpointctl serve --workers 1` (its sandbox costs on purpose) against a bare
  `python -c "import numpy, sklearn, joblib; joblib.load(...)"` up to the moment it
  reports the model loaded.
- **batch_transform**: `endpointctl.transform.transform_local` (line-aligned mini-batches
  ≤ 6 MB POSTed as text/csv, Accept text/csv, output assembled into `<input>.out`)
  on 200,000 × 5 rows against a `LocalEndpoint`, against `np.loadtxt` of the whole file
  + `predict_proba`; alternated.
- **image_serving**: the sklearn 1.2-1 image's own serving stack (nginx from
  sagemaker-containers' template, gunicorn 20.0.4 + gevent on a unix socket, the image's
  app on .venv-image's Python 3.9; `tests/image_serving/image_stack.py`, as the parity
  test starts it), one stack per handler and worker count: ours, the image's default
  (a handler with only `model_fn`), the guide's. `wrk -t1 -c(2 × workers)` with a Lua
  POST script, rounds with the handlers' order rotated; ratios are ours ÷ the other,
  per round. Not a pass/fail: the table above is the result (module docstring for the
  details).
- **release_plan**: `python -m endpointctl plan --format json` over two three-stack
  assemblies (dev, staging, prod, synthesized in process as `cdk synth` does) whose model
  differs (sample model, seeds 7 and 8), model diff included (both archives loaded and
  scored on the 2,000-row reference sample in sandboxed children), against one bare
  interpreter that loads both models and runs `predict_proba` on the same rows;
  alternated. Target: ≤ 10× that floor (it was "under 10 s" at a 1.03 s floor).
- **shadow_latency**: three local endpoints on the sample model, all with `--capture`:
  no shadow (the floor), a hung challenger (its processes SIGSTOPped) and a challenger
  that cannot load; one client alternates 1-row JSON requests across the three over
  fresh loopback connections. p50 and p99 of each; target p50 within +10 % of the floor
  and answers identical.
- **monitor**: `monitoring.monitor.run` (baseline of 20,000 rows) over 1,000,000 captured
  records in SageMaker's format (5 features; JSON and CSV requests alternating, as
  CaptureWriter writes them) in 20 hourly files, in a child process, against a child
  that reads the same files with the standard library only (`json.loads` of each line
  and of its JSON payloads, `float()` of each CSV field); alternated. Targets: ≤ 1.3×,
  peak RSS < 300 MB.
"""


def tool_versions() -> str:
    import gunicorn

    wrk = shutil.which("wrk")
    wrk_version = "not installed"
    if wrk:
        done = subprocess.run([wrk, "-v"], capture_output=True, text=True)
        wrk_version = (done.stdout or done.stderr).split("[")[0].strip() or "unknown"
    return f"gunicorn {gunicorn.__version__}, {wrk_version}"


def main() -> int:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    results: list[Result] = []
    timings: list[str] = []
    broken = 0
    for name in MODULES:
        print(f"== bench.{name}", flush=True)
        t0 = time.perf_counter()
        try:
            rows = importlib.import_module(f"bench.{name}").run()
        except Exception as error:  # record it, and go on with the others
            broken += 1
            traceback.print_exc()
            rows = [Result(f"{name} (did not run)", "—", "—", "—", "—", False, [f"{type(error).__name__}: {error}"])]
        results.extend(rows)
        timings.append(f"{name} {time.perf_counter() - t0:.0f}s")
        print(table(rows), flush=True)

    image_section = getattr(importlib.import_module("bench.image_serving"), "section", [])
    failed = [r.benchmark for r in results if r.passed is False]
    summary = (f"{sum(r.passed is True for r in results)} pass, {len(failed)} fail"
               + (f" ({'; '.join(failed)})" if failed else ""))
    details = []
    for r in results:
        if r.details:
            details.append(f"- **{r.benchmark}**")
            details.extend(f"  - {line}" for line in r.details)
    text = "\n".join([
        "# Benchmark results",
        "",
        f"- Date: {now_utc()}",
        f"- Machine: {machine()}",
        f"- Tools: {tool_versions()}; interpreter {sys.executable}",
        f"- Command: `python -m bench.run_all` ({', '.join(timings)}; total {time.perf_counter() - started:.0f}s)",
        f"- Host: {platform.node()}; load average (1 min) at start / end: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
        "(other work on the machine shows here; the interleaving is what keeps ratios comparable)",
        f"- Summary: {summary}",
        "",
        table(results),
        "",
        *(["## Three handlers in the image's own serving stack", "", *image_section, ""] if image_section else []),
        "## Details",
        "",
        *details,
        "",
        METHOD,
    ])
    RESULTS_MD.write_text(text)
    print(f"\n{summary}\nwrote {RESULTS_MD.relative_to(ROOT)} ({platform.node()})")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
