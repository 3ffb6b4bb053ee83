"""The monitor over a busy prod day: 1,000,000 captured records (5 features, JSON and CSV
requests alternating, as SageMaker writes them), against reading them with the standard
library. Targets (issue 21): ≤ 1.3× the floor, peak memory under 300 MB.

Measured: `monitoring.monitor.run` over the capture folder (a baseline of 20,000 rows),
start to report, in a child process (its peak RSS is the memory figure).
Floor: in a child process too, every line of the same files read with the standard
library: `json.loads` of the line and of its JSON input and output payloads, `float()`
of every CSV field. Alternated, order flipped each round (2 rounds: 1M records take a minute a run here).
Wall clock judges; each child's CPU time and the load average are in the details (on a
shared machine the CPU-time ratio is the steadier).

    python -m bench.monitor
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench._common import CACHE, ROOT, Result, main_for, median, spread

RECORDS = 1_000_000
FILES = 20
ROUNDS = 2
TARGET_RATIO = 1.3
TARGET_MB = 300
HOUR = datetime(2026, 11, 3, 14, tzinfo=timezone.utc)


def capture_folder() -> tuple[Path, Path]:
    """The captured day and its baseline, written once (cached across runs)."""
    import numpy as np

    from monitoring.baseline import build
    from monitoring.capture import capture_line

    root = CACHE / f"monitor-{RECORDS}"
    done = root / "complete"
    if done.exists():
        return root / "capture", root / "baseline.json"
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(20_000, 5))
    scores = 1 / (1 + np.exp(-(rows.sum(axis=1) - 3.5)))
    root.mkdir(parents=True, exist_ok=True)
    (root / "baseline.json").write_text(json.dumps(build(rows.tolist(), scores, total_rows=len(rows),
                                                         missing=[0] * 5, invalid=[0] * 5)))
    live = rng.normal(size=(RECORDS, 5))
    live_scores = 1 / (1 + np.exp(-(live.sum(axis=1) - 3.5)))
    per_file = RECORDS // FILES
    for number in range(FILES):
        hour = HOUR + timedelta(hours=number)
        folder = root / "capture" / "rc-fraud-detection-prod" / "AllTraffic" / hour.strftime("%Y/%m/%d/%H")
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "capture.jsonl", "w") as handle:
            for i in range(number * per_file, (number + 1) * per_file):
                row, score = live[i].tolist(), float(live_scores[i])
                when = hour + timedelta(seconds=(i % 3600))
                if i % 2:
                    line = capture_line("application/json", json.dumps({"instances": [row]}), "application/json",
                                        json.dumps({"predictions": [int(score > 0.5)], "probabilities": [[1 - score, score]]}),
                                        when=when, inference_id=f"txn-{i}")
                else:
                    line = capture_line("text/csv", ",".join(map(repr, row)), "text/csv; charset=utf-8",
                                        f"{int(score > 0.5)},{1 - score!r},{score!r}", when=when)
                handle.write(line + "\n")
    done.write_text("")
    return root / "capture", root / "baseline.json"


MONITOR = """
import json, resource, sys, time
from monitoring.baseline import load
from monitoring.monitor import run
start, cpu = time.perf_counter(), time.process_time()
report = run(load(sys.argv[2]), sys.argv[1])
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": elapsed, "cpu": cpu, "records": report["records"], "invalid": report["invalid_records"],
                  "verdict": report["verdict"], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

FLOOR = """
import glob, json, os, resource, sys, time
start, cpu = time.perf_counter(), time.process_time()
records = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "**", "*.jsonl"), recursive=True)):
    with open(path, "rb") as handle:
        for line in handle:
            record = json.loads(line)
            capture = record["captureData"]
            for part in (capture["endpointInput"], capture["endpointOutput"]):
                if part["encoding"] == "JSON":
                    json.loads(part["data"])
                else:
                    for line_ in part["data"].split("\\n"):
                        [float(field) for field in line_.split(",")]
            records += 1
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": elapsed, "cpu": cpu, "records": records, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-800:])
    return json.loads(done.stdout)


def run() -> list[Result]:
    started = time.perf_counter()
    capture, baseline = capture_folder()
    prepared = time.perf_counter() - started
    monitor, floor, peaks, first = [], [], [], None
    monitor_cpu, floor_cpu = [], []
    load_at_start = os.getloadavg()[0]
    for round_ in range(ROUNDS):
        order = ("floor", "monitor") if round_ % 2 == 0 else ("monitor", "floor")
        for which in order:
            if which == "floor":
                measured = _child(FLOOR, str(capture))
                floor.append(measured["seconds"])
                floor_cpu.append(measured["cpu"])
            else:
                measured = _child(MONITOR, str(capture), str(baseline))
                if measured["records"] != RECORDS:
                    raise RuntimeError(f"the monitor read {measured['records']} records, not {RECORDS}")
                first = first or measured
                monitor.append(measured["seconds"])
                monitor_cpu.append(measured["cpu"])
                peaks.append(measured["peak_mb"])
    ratio = median(monitor) / median(floor)
    peak = max(peaks)
    details = [f"rounds: monitor {', '.join(f'{s:.1f}' for s in monitor)} s; floor {', '.join(f'{s:.1f}' for s in floor)} s; "
               f"per-round ratios {spread([m / f for m, f in zip(monitor, floor)])}",
               f"CPU time (each child's own): monitor {', '.join(f'{s:.1f}' for s in monitor_cpu)} s; floor "
               f"{', '.join(f'{s:.1f}' for s in floor_cpu)} s; ratio of medians {median(monitor_cpu) / median(floor_cpu):.2f}×",
               f"load average (1 min) at start / end: {load_at_start:.2f} / {os.getloadavg()[0]:.2f}",
               f"{RECORDS:,} records in {FILES} hourly files, written once in {prepared:.0f} s (cached in {capture.parent})",
               f"verdict on same-distribution traffic: {first['verdict']} ({first['invalid']} invalid)"]
    return [
        Result(f"monitor over {RECORDS:,} captured records (JSON + CSV)", f"{median(monitor):.1f} s",
               f"{median(floor):.1f} s (stdlib read)", f"{ratio:.2f}×", f"≤ {TARGET_RATIO}×", ratio <= TARGET_RATIO, details),
        Result(f"monitor peak memory, {RECORDS:,} records", f"{peak:.0f} MB", "—", "—", f"< {TARGET_MB} MB",
               peak < TARGET_MB),
    ]


if __name__ == "__main__":
    main_for(run)
