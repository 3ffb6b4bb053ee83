"""Release plan: `endpointctl plan` over two three-stack cloud assemblies (dev, staging,
prod) whose model differs (the sample model, seed 7 → seed 8), model diff included.
Target: <= 10x the floor below, measured in the same run (issue 11 set "under 10 s" when
the floor was 1.03 s; issue 22 turned absolute targets into ratios, as machines differ
by up to 2x from day to day).

Measured: `python -m endpointctl plan --base A --head B --format json`, start to exit:
reading both assemblies, the resource/endpoint/IAM/alarm/data/cost sections for three
stacks, and both models loaded and scored on the 2,000-row reference sample in
sandboxed children (each distinct archive once, two at a time).
Floor: the model diff's unavoidable work in one bare interpreter —
`python -c "import sklearn, joblib; load both models; predict_proba on the same 2,000
rows"` — no sandbox, no handler, no templates. Alternated, order flipped each round,
after one untimed run of each. The same rounds also time the plan of the head over
itself (nothing changes, no model load) to show what the templates cost.

    python -m bench.release_plan
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench._common import CACHE, ROOT, Result, main_for, median, spread

ROUNDS = 5
TARGET = 10.0  # plan ÷ bare model loads
ENVIRONMENTS = ("dev", "staging", "prod")


def assemblies() -> tuple[Path, Path, Path, Path]:
    """Base and head assemblies (synthesized once per run) and the two model archives."""
    from endpointctl.plan.synth import cdk_context, synth_assembly
    from endpointctl.training import write_sample_model

    root = CACHE / f"release-plan-{time.strftime('%Y%m%d%H%M%S')}"
    models = [write_sample_model(root / f"model-seed{seed}.tar.gz", seed=seed) for seed in (7, 8)]
    built = []
    for name, model in zip(("base", "head"), models):
        serving = cdk_context()["serving"]
        serving["model_data"] = str(model)
        built.append(synth_assembly(serving, ENVIRONMENTS, root / name))
    return built[0], built[1], models[0], models[1]


def plan_once(base: Path, head: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "endpointctl", "plan", "--base", str(base), "--head", str(head),
                           "--format", "json"], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 3) or '"model_diff"' not in done.stdout:
        raise RuntimeError(f"endpointctl plan failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def floor_once(before: Path, after: Path) -> float:
    code = f"""
import io, tarfile, joblib
from endpointctl.plan.model_diff import DEFAULT_SAMPLE_ROWS, DEFAULT_SAMPLE_SEED
from endpointctl.training import synthetic_transactions
rows, _ = synthetic_transactions(DEFAULT_SAMPLE_ROWS, seed=DEFAULT_SAMPLE_SEED)
for archive in ({str(before)!r}, {str(after)!r}):
    with tarfile.open(archive) as tar:
        model = joblib.load(io.BytesIO(tar.extractfile("model.joblib").read()))
    model.predict_proba(rows)
"""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - start


def run() -> list[Result]:
    base, head, before, after = assemblies()
    plan_once(base, head)
    floor_once(before, after)
    plans, floors, unchanged = [], [], []
    for i in range(ROUNDS):
        steps = [lambda: plans.append(plan_once(base, head)), lambda: floors.append(floor_once(before, after))]
        for step in (steps if i % 2 == 0 else steps[::-1]):
            step()
        unchanged.append(plan_once(head, head))
    measured, floor = median(plans), median(floors)
    return [Result(
        "release plan, 3 stacks, model diff included", f"{measured:.2f} s", f"{floor:.2f} s (bare model loads)",
        f"{measured / floor:.2f}×", f"≤ {TARGET:g}×", measured / floor <= TARGET,
        [f"{ROUNDS} alternated rounds; plan {', '.join(f'{p:.2f}' for p in plans)} s; floor "
         f"{', '.join(f'{f:.2f}' for f in floors)} s; per-round ratio {spread([p / f for p, f in zip(plans, floors)])}",
         f"the same plan with nothing changed (no model load): median {median(unchanged):.2f} s "
         f"({', '.join(f'{u:.2f}' for u in unchanged)} s)",
         f"models: {before.stat().st_size:,} and {after.stat().st_size:,} bytes (train-sample seeds 7 and 8)"],
    )]


if __name__ == "__main__":
    main_for(run)
