"""Three handlers in the sklearn 1.2-1 image's own serving stack, side by side.

The stack is started as tests/handler/test_image_parity.py starts it
(tests/image_serving/image_stack.py): Debian's nginx configured by sagemaker-containers'
template, gunicorn 20.0.4 with gevent workers on a unix socket, the image's WSGI app
(tests/image_serving/image_app.py) on .venv-image's Python 3.9 with numpy 1.24.1 and
scikit-learn 1.2.1. Handlers, each in its own stack at 1 and at 2 workers:

- ours: inference/inference.py;
- the image's default: bench/image_default_inference.py defines only model_fn, so the
  app serves with the image's default input_fn/predict_fn/output_fn. The image's
  `sagemaker_sklearn_container` is not on PyPI and not in .venv-image: image_app.py
  applies the defaults as the image's serving.py defines them
  (aws/sagemaker-scikit-learn-container, src/sagemaker_sklearn_container/serving.py:
  `encoders.decode` then `.astype(np.float32)` for JSON/CSV, `model.predict`,
  `worker.Response(encoders.encode(prediction, accept), ...)`);
- the guide's: tests/image_serving/guide_inference.py, unchanged.

Requests: 1-row JSON (Accept application/json) and 1,000-row CSV (Accept text/csv), each
in the JSON shape the handler reads: {"instances": rows} for ours and the guide's, the
bare list of rows for the image's default (its decoder is np.array(json.loads(body))).
A handler that does not answer a kind with 200 is probed once and shown with its
status, not timed. Load: wrk -t1 -c(2 × workers) with a Lua POST script, WRK_SECONDS
per cell, ROUNDS rounds; in each round the handlers' order is rotated, so the machine's
load hits each alike; requests/s and p50/p99 are medians over rounds, and the ratios
(ours ÷ other, per round, then the median) compare runs of the same round.

    python -m bench.image_serving
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from bench._common import (
    CSV_TYPE,
    JSON_TYPE,
    ROOT,
    Result,
    csv_body,
    feature_rows,
    main_for,
    median,
    ms,
    run_wrk,
    sample_model,
    wrk_script,
)

HANDLERS = {
    "ours": ROOT / "inference" / "inference.py",
    "image default": ROOT / "bench" / "image_default_inference.py",
    "guide": ROOT / "tests" / "image_serving" / "guide_inference.py",
}
WORKERS = (1, 2)
KINDS = {  # name: (rows, content type, accept)
    "1-row JSON": (1, JSON_TYPE, JSON_TYPE),
    "1,000-row CSV": (1_000, CSV_TYPE, CSV_TYPE),
}
ROUNDS = 5
WRK_SECONDS = 3

# Filled by run(): the side-by-side table and its notes, for RESULTS.md.
section: list[str] = []


def body_for(handler: str, kind: str) -> bytes:
    rows, content_type, _ = KINDS[kind]
    features = feature_rows(rows)
    if content_type == CSV_TYPE:
        return csv_body(features).encode()
    instances = features.tolist()
    return json.dumps(instances if handler == "image default" else {"instances": instances}).encode()


def run() -> list[Result]:
    from tests.image_serving.image_stack import code_archive_for, start_image_server

    archive, _ = sample_model()
    stacks = {}
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        try:
            for handler, path in HANDLERS.items():
                for workers in WORKERS:
                    workdir = Path(tmp) / f"{handler.replace(' ', '-')}-{workers}"
                    workdir.mkdir()
                    code = code_archive_for(path, workdir)
                    stacks[handler, workers] = start_image_server(archive, code, workdir, workers=workers)
            return _measure(Path(tmp), stacks)
        finally:
            for stack in stacks.values():
                stack.stop()


def _measure(tmp: Path, stacks: dict) -> list[Result]:
    from endpointctl.invoke import post_local

    scripts, refused = {}, {}
    for kind, (_, content_type, accept) in KINDS.items():
        for handler in HANDLERS:
            body = body_for(handler, kind)
            for workers in WORKERS:
                status, _, _ = post_local(stacks[handler, workers].url, body, content_type, accept)
                if status != 200:
                    refused[handler, kind] = status
            if (handler, kind) not in refused:
                folder = tmp / f"wrk-{handler.replace(' ', '-')}-{kind.split('-')[0]}"
                folder.mkdir()
                scripts[handler, kind] = wrk_script(folder, body, content_type, accept)
    cells = [(workers, kind, handler) for workers in WORKERS for kind in KINDS for handler in HANDLERS
             if (handler, kind) in scripts]
    for workers, kind, handler in cells:  # warm up: every worker builds the app on its first request
        run_wrk(stacks[handler, workers].url, scripts[handler, kind], threads=1, connections=2 * workers, seconds=1)
    runs: dict[tuple, list[dict]] = {cell: [] for cell in cells}
    load = [os.getloadavg()[0]]
    for round_ in range(ROUNDS):
        for workers in WORKERS:
            for kind in KINDS:
                order = [h for h in HANDLERS if (h, kind) in scripts]
                shift = round_ % len(order)
                order = order[shift:] + order[:shift]
                for handler in (order if round_ % 2 == 0 else order[::-1]):
                    runs[workers, kind, handler].append(run_wrk(
                        stacks[handler, workers].url, scripts[handler, kind], threads=1,
                        connections=2 * workers, seconds=WRK_SECONDS))
        load.append(os.getloadavg()[0])
    return _report(runs, refused, load)


def _report(runs: dict, refused: dict, load: list[float]) -> list[Result]:
    results = []
    header = "| workers | request | handler | requests/s | p50 | p99 | ours ÷ this (req/s, per-round median) |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for workers in WORKERS:
        for kind in KINDS:
            ours = runs.get((workers, kind, "ours"))
            for handler in HANDLERS:
                if (handler, kind) in refused:
                    lines.append(f"| {workers} | {kind} | {handler} | answers {refused[handler, kind]} (not timed) | — | — | — |")
                    continue
                rs = runs[workers, kind, handler]
                rps = median([r["rps"] for r in rs])
                ratio = "—"
                if ours is not None and handler != "ours":
                    per_round = [o["rps"] / r["rps"] for o, r in zip(ours, rs)]
                    ratio = f"{median(per_round):.2f}× ({min(per_round):.2f}–{max(per_round):.2f}×)"
                    results.append(Result(
                        f"image stack, {workers} worker{'s' if workers > 1 else ''}, {kind}: ours vs {handler} (req/s)",
                        f"{median([o['rps'] for o in ours]):.0f} req/s", f"{rps:.0f} req/s", f"{median(per_round):.2f}×",
                        "— (info)", None,
                        [f"p50 {ms(median([o['p50'] for o in ours]))} vs {ms(median([r['p50'] for r in rs]))}; "
                         f"p99 {ms(median([o['p99'] for o in ours]))} vs {ms(median([r['p99'] for r in rs]))}; "
                         f"per-round ratios " + ", ".join(f"{x:.2f}" for x in per_round)]))
                lines.append(f"| {workers} | {kind} | {handler} | {rps:.0f} | {ms(median([r['p50'] for r in rs]))} | "
                             f"{ms(median([r['p99'] for r in rs]))} | {ratio} |")
    section.clear()
    section.extend([
        f"wrk -t1 -c(2 × workers), {ROUNDS} rounds × {WRK_SECONDS} s per cell, handlers' order rotated each round; "
        f"load average (1 min) at the start of each round and at the end: {', '.join(f'{x:.1f}' for x in load)}.",
        "",
        *lines,
        "",
        "What each answers: ours, labels and every class's probability (JSON, or one CSV line per row); "
        "the image's default, `model.predict` labels only, its input cast to float32 by its decoder; "
        "the guide's, JSON only (it raises on any other content type, which the image answers 500).",
    ])
    return results


if __name__ == "__main__":
    main_for(run)
    print("\n".join(section))
