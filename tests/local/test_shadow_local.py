"""`endpointctl serve --shadow-model-data` (issue 20, item 5): the champion answers, the
challenger gets a copy in its own sandboxed child, and neither a failing nor a hung
challenger changes a caller's answer. (How much latency it adds is measured in
bench/shadow_latency.py, not asserted here.)"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from endpointctl.cli import main
from endpointctl.local import Capture, LocalEndpoint, ShadowServing
from tests.conftest import tar_bytes

ROWS = [[0.1 * i, 1.2, 0.3, 0.8, 0.1] for i in range(12)]


def call(url: str, row: list[float], inference_id: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps({"instances": [row]}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "X-Amzn-SageMaker-Inference-Id": inference_id}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def answers(endpoint: LocalEndpoint) -> list[tuple[int, dict]]:
    return [call(endpoint.url, row, f"req-{i}") for i, row in enumerate(ROWS)]


def wait_for(predicate, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def records(root: Path, variant: str) -> list[dict]:
    return [json.loads(line) for path in sorted((root / "local-endpoint" / variant).rglob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def alone(sample_model) -> list[tuple[int, dict]]:
    with LocalEndpoint(model_data=sample_model) as endpoint:
        return answers(endpoint)


def test_champion_answers_and_both_are_captured_and_compared(sample_model, retrained_model, alone, tmp_path, capsys):
    capture = tmp_path / "capture"
    with LocalEndpoint(model_data=sample_model, capture=Capture(str(capture), "local-endpoint", "AllTraffic"),
                       shadow=ShadowServing(str(retrained_model), "Challenger", 100)) as endpoint:
        assert answers(endpoint) == alone  # the champion's answers, never the challenger's
        assert wait_for(lambda: len(records(capture, "Challenger")) == len(ROWS)), endpoint.stop()
    champion, challenger = records(capture, "AllTraffic"), records(capture, "Challenger")
    assert sorted(r["eventMetadata"]["inferenceId"] for r in challenger) == sorted(f"req-{i}" for i in range(len(ROWS)))
    assert {r["eventMetadata"]["eventId"] for r in champion} == {r["eventMetadata"]["eventId"] for r in challenger}
    assert main(["compare", "--capture", str(capture), "--production", "AllTraffic", "--shadow", "Challenger",
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["paired"] == len(ROWS) and report["production"]["records"] == len(ROWS)


def test_share_copies_only_some_requests(sample_model, retrained_model, tmp_path):
    from endpointctl.serve_shadow import copied

    capture = tmp_path / "capture"
    with LocalEndpoint(model_data=sample_model, capture=Capture(str(capture), "local-endpoint", "AllTraffic"),
                       shadow=ShadowServing(str(retrained_model), "Challenger", 30)) as endpoint:
        answers(endpoint)
        expected = {r["eventMetadata"]["eventId"] for r in records(capture, "AllTraffic")
                    if copied(r["eventMetadata"]["eventId"], 30)}
        assert wait_for(lambda: {r["eventMetadata"]["eventId"] for r in records(capture, "Challenger")} == expected)


@pytest.fixture(scope="module")
def broken_challenger(tmp_path_factory) -> Path:
    """An archive whose model.joblib is not a model: the challenger fails to load."""
    import gzip

    path = tmp_path_factory.mktemp("broken") / "broken.tar.gz"
    path.write_bytes(gzip.compress(tar_bytes({"model.joblib": b"not a pickle"})))
    return path


def test_a_failing_challenger_changes_no_answer(sample_model, broken_challenger, alone, tmp_path):
    capture = tmp_path / "capture"
    with LocalEndpoint(model_data=sample_model, capture=Capture(str(capture), "local-endpoint", "AllTraffic"),
                       shadow=ShadowServing(str(broken_challenger), "Challenger", 100)) as endpoint:
        assert answers(endpoint) == alone
    assert records(capture, "Challenger") == []


def test_a_hung_challenger_changes_no_answer(sample_model, retrained_model, alone, tmp_path):
    capture = tmp_path / "capture"
    with LocalEndpoint(model_data=sample_model, capture=Capture(str(capture), "local-endpoint", "AllTraffic"),
                       shadow=ShadowServing(str(retrained_model), "Challenger", 100)) as endpoint:
        assert wait_for(lambda: bool(endpoint.challenger_pids()))
        frozen = endpoint.challenger_pids()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert answers(endpoint) == alone  # each within urlopen's 30 s, while the challenger never answers
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
