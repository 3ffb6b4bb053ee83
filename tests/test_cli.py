"""endpointctl's own behaviour: one clear line and a non-zero exit for each known failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from endpointctl.invoke import explain_runtime_error
from endpointctl.local import free_port


def endpointctl(*args: str, env: dict | None = None, cwd=None):
    return subprocess.run([sys.executable, "-m", "endpointctl", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


def test_help_answers_for_every_command():
    for command in ("train-sample", "preflight", "serve", "invoke", "transform", "status", "cost", "demo"):
        result = endpointctl(command, "--help")
        assert result.returncode == 0 and "usage: endpointctl" in result.stdout


def test_unreachable_aws_is_one_line():
    result = endpointctl("status", "--env", "dev", env={
        "AWS_ENDPOINT_URL": f"http://localhost:{free_port()}", "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"})
    assert result.returncode == 1
    assert result.stderr.strip().startswith("endpointctl status: cannot reach http://localhost:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_region_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = subprocess.run([sys.executable, "-m", "endpointctl", "invoke", "--env", "dev", "--body", "{}"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "no AWS region" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("error, words", [
    ({"Error": {"Code": "ModelError", "Message": "Received client error (400)"}, "OriginalStatusCode": 400,
      "OriginalMessage": '{"error": "each row must have 5 features; got 3"}'}, "the model answered 400: "),
    ({"Error": {"Code": "ValidationError", "Message": "Endpoint x of account 1 not found."}}, "does not exist: deploy it"),
    ({"Error": {"Code": "ValidationError", "Message": "Body exceeds 6 MB"}}, "request refused: Body exceeds 6 MB"),
    ({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "retry shortly"),
    ({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "needs sagemaker:InvokeEndpoint"),
])
def test_each_runtime_error_says_what_to_do(error, words):
    assert words in explain_runtime_error("rc-fraud-detection-dev-serverless", ClientError(error, "InvokeEndpoint"))


def test_invoke_and_transform_through_a_local_endpoint(sample_model, tmp_path):
    from endpointctl.local import LocalEndpoint
    from endpointctl.training import synthetic_transactions

    with LocalEndpoint(model_data=sample_model, workers=1) as endpoint:
        result = endpointctl("invoke", "--local", endpoint.url, "--body", '{"instances": [[0.5, 1.2, 0.3, 0.8, 0.1]]}')
        assert result.returncode == 0 and set(json.loads(result.stdout)) == {"predictions", "probabilities"}
        bad = endpointctl("invoke", "--local", endpoint.url, "--body", '{"instances": [[0.5, 1.2, 0.3]]}')
        assert bad.returncode == 1 and "answered 400" in bad.stderr and "5 features" in bad.stdout

        features, _ = synthetic_transactions(3000, seed=5)
        data = tmp_path / "data.csv"
        data.write_text("\n".join(",".join(map(repr, row)) for row in features.tolist()) + "\n")
        # 1 MB mini-batches: several requests, assembled in order.
        result = endpointctl("transform", "--local", endpoint.url, "--input", str(data), "--output", str(tmp_path / "out"),
                             "--max-payload-mb", "1")
        assert result.returncode == 0, result.stderr
        lines = (tmp_path / "out" / "data.csv.out").read_text().splitlines()
        assert len(lines) == 3000
        assert "transform data.csv" in result.stderr  # the progress bar


def test_local_mini_batches_split_on_lines_only():
    from endpointctl.errors import CommandError
    from endpointctl.transform import mini_batches

    data = b"1,2\n3,4\n5,6\n"
    assert list(mini_batches(data, 8)) == [b"1,2\n3,4", b"5,6"]
    with pytest.raises(CommandError, match="longer than MaxPayloadInMB"):
        list(mini_batches(b"1,2,3,4,5,6,7,8\n", 4))
