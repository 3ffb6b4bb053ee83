"""Bad configuration fails before any construct; bad artifacts are refused by preflight."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

from serving_config.config import ConfigError, load_config, parse_config
from tests.conftest import ROOT, env_config, serving_settings, tar_bytes


def problems_of(raw) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value)


def test_cdk_json_parses_to_the_guides_defaults():
    config = load_config()
    dev = config.environment("dev")
    assert dev.endpoint.kind == "serverless" and (dev.endpoint.memory_mb, dev.endpoint.max_concurrency) == (2048, 5)
    assert config.environment("prod").endpoint.kind == "instance"
    assert dev.inference_role_name == "SageMaker-RiskControl-FraudDetection-Dev-InferenceRole"
    assert not dev.retain_data and config.environment("prod").retain_data


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"endpoint": {"kind": "serverless", "memory_mb": 1500}}, 'environments.dev.endpoint.memory_mb: got 1500; allowed: 1024 | 2048 | 3072 | 4096 | 5120 | 6144'),
        ({"endpoint": {"kind": "serverless", "max_concurrency": 0}}, "environments.dev.endpoint.max_concurrency: got 0; allowed: an integer from 1 to 200"),
        ({"endpoint": {"kind": "serverless", "max_concurrency": 201}}, "max_concurrency: got 201"),
        ({"endpoint": {"kind": "serverless", "max_concurrency": 5, "provisioned_concurrency": 6}}, "provisioned_concurrency: got 6; allowed: at most max_concurrency (5)"),
        ({"endpoint": {"kind": "instance", "instance_type": "m5.large"}}, "environments.dev.endpoint.instance_type: got \"m5.large\"; allowed: an ml.* instance type"),
        ({"endpoint": {"kind": "instance", "instance_count": 0}}, "instance_count: got 0; allowed: an integer from 1 to 100"),
        ({"endpoint": {"kind": "gpu"}}, 'endpoint.kind: got "gpu"; allowed: "serverless" | "instance"'),
        ({"endpoint": {"kind": "serverless", "memroy_mb": 2048}}, "environments.dev.endpoint.memroy_mb: unknown key; allowed keys:"),
        ({"colour": "blue"}, "environments.dev.colour: unknown key"),
        ({"inference_role": "borrow"}, 'inference_role: got "borrow"; allowed: "create" | "import"'),
        ({"batch": {"max_payload_mb": 50, "max_concurrent_transforms": 3}}, "max_concurrent_transforms x max_payload_mb <= 100"),
        ({"alarms": {"email": "not-an-email"}}, "alarms.email: got \"not-an-email\""),
        ({"model_data": "model.zip"}, "model_data: got \"model.zip\"; allowed: an s3://"),
        ({"region": "Tokyo"}, "region: got \"Tokyo\""),
    ],
)
def test_bad_environment_values_name_key_value_and_allowed(overrides, expected):
    assert expected in problems_of(env_config("dev", **overrides))


def test_environment_without_a_tier_and_unknown_top_level_key():
    raw = serving_settings()
    raw["environments"]["qa"] = {}
    raw["colour"] = "blue"
    message = problems_of(raw)
    assert 'environments.qa.tier: got null; allowed: "dev" | "staging" | "prod"' in message
    assert "colour: unknown key" in message
    with pytest.raises(ConfigError, match="env: 'qa' is not an environment"):
        load_config().environment("qa")


def test_names_too_long_or_with_bad_characters():
    message = problems_of(serving_settings(team_fullname="RiskControlAndFraudPreventionDepartment"))
    assert "role name 'SageMaker-RiskControlAndFraudPreventionDepartment-FraudDetection-Dev-InferenceRole'" in message
    assert "at most 64" in message
    message = problems_of(serving_settings(project="fraud_detection"))
    assert 'project: got "fraud_detection"; allowed: lowercase letters, digits and hyphens' in message
    message = problems_of(serving_settings(project="fraud-detection-for-the-whole-risk-control-organisation"))
    assert "endpoint name 'rc-fraud-detection-for-the-whole-risk-control-organisation-staging-serverless'" in message


def test_all_problems_are_reported_together():
    raw = env_config("dev", endpoint={"kind": "serverless", "memory_mb": 1000, "max_concurrency": 0})
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert len(caught.value.problems) == 2


def test_cdk_synth_refuses_bad_config_with_exit_1(tmp_path):
    from tests.conftest import CONTEXT

    context = {**CONTEXT, "serving": env_config("dev", endpoint={"kind": "serverless", "memory_mb": 1500})}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, capture_output=True, text=True,
                            env={**__import__("os").environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)})
    assert result.returncode == 1
    assert "environments.dev.endpoint.memory_mb: got 1500" in result.stderr and "Traceback" not in result.stderr


def test_endpointctl_reports_broken_cdk_json_in_one_line_as_cdk_synth(tmp_path, monkeypatch, capsys):
    from serving_config import config
    from endpointctl.cli import main

    broken = tmp_path / "cdk.json"
    broken.write_text('{"app": "python app.py", "context": {"serving": {,}}}')
    monkeypatch.setattr(config, "CDK_JSON", broken)
    assert main(["cost", "--env", "dev"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err == ("endpointctl cost: cdk.json: Expecting property name enclosed in double quotes at line 1 column 50\n")


# ------------------------------------------------------------------------ preflight


def archive(path: Path, members: dict[str, bytes]) -> Path:
    path.write_bytes(gzip.compress(tar_bytes(members)))
    return path


def model_bytes(model, *, sklearn_version: str | None = None) -> bytes:
    import sklearn.base

    buffer = io.BytesIO()
    original = sklearn.base.__version__
    if sklearn_version:  # what another scikit-learn would have written into the state
        sklearn.base.__version__ = sklearn_version
    try:
        joblib.dump(model, buffer)
    finally:
        sklearn.base.__version__ = original
    return buffer.getvalue()


@pytest.fixture(scope="module")
def small_model():
    from endpointctl.training import train_sample_model

    return train_sample_model(rows=500)


def preflight(model_data: Path, code: Path = ROOT / "inference", *extra: str):
    return subprocess.run([sys.executable, "-m", "endpointctl", "preflight", "--model-data", str(model_data),
                           "--code", str(code), *extra], capture_output=True, text=True)


def test_preflight_accepts_the_sample(sample_model):
    result = preflight(sample_model)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pickled by scikit-learn 1.2.1" in result.stdout


def test_preflight_refuses_a_zip(tmp_path):
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    result = preflight(bad)
    assert result.returncode == 1 and "is not a gzip tar archive" in result.stdout


def test_preflight_refuses_model_joblib_not_at_the_root(tmp_path, small_model):
    bad = archive(tmp_path / "model.tar.gz", {"output/model.joblib": model_bytes(small_model)})
    result = preflight(bad)
    assert result.returncode == 1 and "no model.joblib at its root (found output/model.joblib" in result.stdout


def test_preflight_refuses_another_sklearns_pickle(tmp_path, small_model):
    bad = archive(tmp_path / "model.tar.gz", {"model.joblib": model_bytes(small_model, sklearn_version="1.5.2")})
    result = preflight(bad)
    assert result.returncode == 1
    assert "RandomForestClassifier from 1.5.2" in result.stdout and "scikit-learn==1.2.1" in result.stdout


def test_preflight_refuses_a_handler_that_does_not_import(tmp_path, sample_model):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("import xgboost\n")
    result = preflight(sample_model, code)
    assert result.returncode == 1 and "inference.py failed to import: ModuleNotFoundError" in result.stdout


def test_preflight_refuses_a_handler_that_fails_the_sample_request(tmp_path, sample_model):
    code = tmp_path / "code"
    code.mkdir()
    source = (ROOT / "inference" / "inference.py").read_text()
    (code / "inference.py").write_text(source + "\n\ndef predict_fn(input_data, model):\n    return model.predict(input_data)\n")
    result = preflight(sample_model, code)
    assert result.returncode == 1 and "raised AttributeError" in result.stdout and "a 500 on SageMaker" in result.stdout


def test_preflight_refuses_a_response_over_the_limit(sample_model):
    result = preflight(sample_model, ROOT / "inference", "--max-response-bytes", "20")
    assert result.returncode == 1 and "over the 20-byte limit" in result.stdout


def test_the_synths_preflight_runs_once_per_bytes_checked_and_never_remembers_a_refusal(tmp_path, sample_model,
                                                                                        monkeypatch):
    """One app builds several stacks from one artifact: a passed preflight is remembered by
    the bytes it checked (model, handler, limits), so a change to any of them runs it again."""
    import shutil

    from serving_runtime import preflight as module

    runs: list[list[str]] = []
    real = module.run_sandboxed

    def counted(command, **kwargs):
        runs.append(command)
        return real(command, **kwargs)

    monkeypatch.setattr(module, "run_sandboxed", counted)
    monkeypatch.setattr(module, "_PASSED", set())
    code = tmp_path / "code"
    shutil.copytree(ROOT / "inference", code, ignore=shutil.ignore_patterns("__pycache__"))
    model = tmp_path / "model.tar.gz"
    shutil.copy(sample_model, model)

    module.preflight_in_subprocess(model, handler_dir=code)
    module.preflight_in_subprocess(model, handler_dir=code)
    assert len(runs) == 1
    module.preflight_in_subprocess(model, handler_dir=code, max_response_bytes=10_000)  # another limit
    assert len(runs) == 2
    (code / "inference.py").write_text((code / "inference.py").read_text() + "\n# changed\n")  # same name, new bytes
    module.preflight_in_subprocess(model, handler_dir=code)
    assert len(runs) == 3

    (code / "inference.py").write_text("import xgboost\n")
    for attempt in (4, 5):  # refused each time: a refusal is not remembered
        with pytest.raises(module.PreflightError, match="failed to import"):
            module.preflight_in_subprocess(model, handler_dir=code)
        assert len(runs) == attempt
