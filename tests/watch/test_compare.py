"""`endpointctl compare` and monitoring/compare.py on hand-made captured pairs.

The capture files are raw JSON lines written here, in SageMaker's documented format
(../shared/reference/SAGEMAKER.md, "Watching a live endpoint"), not by the project's
CaptureWriter, so a bug shared by the writer and the reader cannot hide.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from endpointctl.cli import main
from monitoring.compare import parse_predictions

HOUR = "2026/12/01/10"


def record(event_id, response, *, inference_id=None, content_type="application/json", minute=5):
    metadata = {"eventId": event_id, "inferenceTime": f"2026-12-01T10:{minute:02d}:00.000Z"}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "0.1,0.2,0.3,0.4,0.5",
                              "encoding": "CSV"},
            "endpointOutput": {"observedContentType": content_type, "mode": "OUTPUT", "data": response,
                               "encoding": "JSON" if content_type == "application/json" else "CSV"},
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    })


def answer(label: int, p: float) -> str:
    return json.dumps({"predictions": [label], "probabilities": [[1 - p, p]]})


def write(root: Path, variant: str, lines: list[str], name: str = "10-00-000-a.jsonl") -> None:
    folder = root / "fraud-prod" / variant / HOUR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")


# Production and shadow labels and p(fraud) per request, by hand:
#   id   prod     shadow
#   r1   1 0.90   1 0.80   agree, |dp| 0.10
#   r2   0 0.10   1 0.60   differ, 0.50
#   r3   0 0.20   0 0.20   agree, 0.00
#   r4   1 0.70   0 0.40   differ, 0.30
#   r5   0 0.05   -        production only (not copied): unpaired
PRODUCTION = {"r1": (1, 0.9), "r2": (0, 0.1), "r3": (0, 0.2), "r4": (1, 0.7), "r5": (0, 0.05)}
SHADOW = {"r1": (1, 0.8), "r2": (1, 0.6), "r3": (0, 0.2), "r4": (0, 0.4)}


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    root = tmp_path / "capture"
    # Pairs r1, r2 by inferenceId (different eventIds); r3, r4 by eventId (no inferenceId).
    write(root, "Champion", [
        record("e-r1-p", answer(*PRODUCTION["r1"]), inference_id="r1"),
        record("e-r2-p", answer(*PRODUCTION["r2"]), inference_id="r2"),
        record("r3", answer(*PRODUCTION["r3"])),
        "this is not JSON",
        record("r4", answer(*PRODUCTION["r4"])),
        json.dumps({"captureData": {}}),
        record("r5", answer(*PRODUCTION["r5"])),
    ])
    write(root, "Challenger", [
        record("e-r1-s", answer(*SHADOW["r1"]), inference_id="r1"),
        record("e-r2-s", answer(*SHADOW["r2"]), inference_id="r2"),
        "{\"truncated\": ",
        # CSV responses read the same as JSON ones.
        record("r3", "0,0.8,0.2", content_type="text/csv"),
        record("r4", answer(*SHADOW["r4"])),
        # An unpaired shadow record, and a refused request's body (no predictions).
        record("orphan", answer(0, 0.3)),
        record("refused", json.dumps({"error": "bad row", "status": 400})),
    ])
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_matches_a_hand_computation(capture: Path, capsys) -> None:
    code, out, err = run(capsys, "--capture", str(capture), "--production", "Champion", "--shadow", "Challenger",
                         "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert set(report) == {"production", "shadow", "paired", "agreement", "delta_p", "quality"}
    assert report["production"] == {"variant": "Champion", "records": 5, "flag_rate": 0.4}  # r1, r4 of 5
    # 5 readable shadow records (the refused one holds no predictions): r1, r2, orphan... flagged r1, r2.
    assert report["shadow"] == {"variant": "Challenger", "records": 5, "flag_rate": 0.4}
    assert report["paired"] == 4
    assert report["agreement"] == 0.5  # r1, r3 of 4
    deltas = sorted([0.1, 0.5, 0.0, 0.3])
    assert report["delta_p"]["max"] == pytest.approx(0.5)
    assert report["delta_p"]["p50"] == pytest.approx((deltas[1] + deltas[2]) / 2)
    assert report["delta_p"]["p99"] == pytest.approx(0.3 + 0.97 * 0.2)  # numpy: linear, position 0.99 * 3
    assert report["quality"] is None


def test_markdown_counts_garbage_and_unpaired(capture: Path, capsys) -> None:
    code, out, _ = run(capsys, "--capture", str(capture), "--production", "Champion", "--shadow", "Challenger")
    assert code == 0
    assert "| invalid capture lines | 2 | 1 |" in out
    assert "| unpaired records | 1 | 1 |" in out
    assert "| unreadable responses | 0 | 1 |" in out
    assert "Agreement (same label): **50.00 %**" in out


def test_quality_with_ground_truth(capture: Path, tmp_path: Path, capsys) -> None:
    truth = tmp_path / "truth" / "2026" / "12" / "01" / "11"
    truth.mkdir(parents=True)
    # Labels keyed as AWS's sample writes them: the inference id (else the eventId) under eventId.
    labels = {"r1": 1, "r2": 1, "r3": 0, "r4": 0}
    (truth / "labels.jsonl").write_text("".join(
        json.dumps({"groundTruthData": {"data": str(v), "encoding": "CSV"}, "eventMetadata": {"eventId": k},
                    "eventVersion": "0"}) + "\n" for k, v in labels.items()) + "garbage\n")
    code, out, err = run(capsys, "--capture", str(capture), "--production", "Champion", "--shadow", "Challenger",
                         "--ground-truth", str(tmp_path / "truth"), "--format", "json")
    assert code == 0, err
    quality = json.loads(out)["quality"]
    # production flags r1, r4: TP r1, FP r4, FN r2 -> precision 1/2, recall 1/2
    # shadow flags r1, r2: TP r1, r2 -> precision 1, recall 1
    assert quality == {"labelled": 4, "production": {"precision": 0.5, "recall": 0.5},
                       "shadow": {"precision": 1.0, "recall": 1.0}}


def test_window_keeps_only_records_inside(tmp_path: Path, capsys) -> None:
    root = tmp_path / "capture"
    write(root, "A", [record("x", answer(1, 0.9), minute=5), record("y", answer(0, 0.1), minute=40)])
    write(root, "B", [record("x", answer(1, 0.9), minute=5), record("y", answer(1, 0.9), minute=40)])
    code, out, _ = run(capsys, "--capture", str(root), "--production", "A", "--shadow", "B",
                       "--since", "2026-12-01T10:00Z", "--until", "2026-12-01T10:30Z", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert (report["paired"], report["agreement"]) == (1, 1.0)


@pytest.mark.parametrize("argv, message", [
    (["--capture", "/no/such/folder", "--production", "A", "--shadow", "B"], "no such folder"),
    (["--production", "A", "--shadow", "B"], "missing --capture"),
    (["--capture", ".", "--production", "A", "--shadow", "A"], "both 'A'"),
    (["--capture", ".", "--production", "A", "--shadow", "B", "--since", "2026-12-02", "--until", "2026-12-01"],
     "is not before"),
    (["--capture", ".", "--production", "A", "--shadow", "B", "--since", "yesterday"], "ISO-8601"),
    (["--capture", ".", "--production", "A", "--shadow", "B", "--format", "xml"], "invalid choice"),
    (["--capture", ".", "--production", "bad name!", "--shadow", "B"], "letters, digits and hyphens"),
])
def test_bad_input_is_one_line_and_exit_1(argv, message, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["compare", *argv])
    except SystemExit as stopped:  # argparse's own refusals
        code = stopped.code
    _, err = capsys.readouterr()
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_empty_capture_folder_is_bad_input(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "--capture", str(tmp_path), "--production", "A", "--shadow", "B")
    assert code == 1 and "no capture files" in err


@pytest.mark.parametrize("kind, text, expected", [
    ("application/json", '{"predictions": [1, 0], "probabilities": [[0.1, 0.9], [0.8, 0.2]]}', (["1", "0"], [0.9, 0.2])),
    ("text/csv", "1,0.1,0.9\n0,0.8,0.2", (["1", "0"], [0.9, 0.2])),
    ("text/csv", "1.0,0.1,0.9", (["1"], [0.9])),
    ("application/json", '{"error": "no"}', None),
    ("application/json", '{"predictions": [1], "probabilities": [[0.1, NaN]]}', None),
    ("application/json", '{"predictions": [1, 0], "probabilities": [[0.1, 0.9]]}', None),
    ("text/csv", "justone", None),
    ("application/x-npy", "1,0.1,0.9", None),
])
def test_parse_predictions(kind, text, expected) -> None:
    assert parse_predictions(kind, text) == expected


def test_env_fills_the_capture_location_and_variant_names(capture: Path, capsys, monkeypatch) -> None:
    """--env: the variant names from cdk.json's endpoint.shadow, the location from the
    stack's outputs (here a local folder standing in for s3://<BucketName>/data-capture/)."""
    import endpointctl.aws
    from serving_config.config import parse_config
    from tests.conftest import serving_settings

    raw = serving_settings()
    endpoint = raw["environments"]["prod"]["endpoint"]
    endpoint["shadow"] = {"name": "Challenger", "model_data": "challenger.tar.gz", "sampling_percent": 10}
    config = parse_config(raw)
    monkeypatch.setattr(endpointctl.aws, "environment", lambda name: config.environment(name))
    code, out, err = run(capsys, "--env", "prod", "--capture", str(capture), "--production", "Champion", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["shadow"]["variant"] == "Challenger"
    code, _, err = run(capsys, "--env", "dev", "--format", "json")
    assert code == 1 and "has no endpoint.shadow" in err
