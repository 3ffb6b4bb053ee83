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
from tests.conftest import ROOT


def endpointctl(*args: str, env: dict | None = None, cwd=None):
    return subprocess.run([sys.executable, "-m", "endpointctl", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


def test_help_answers_for_every_command():
    """Every command the parser has (read from it, so a new one is not forgotten), and
    the top-level help lists each with its one-line summary."""
    import argparse

    from endpointctl.cli import build_parser

    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert {"plan", "register", "approve", "reject", "smoke-test"} <= set(commands.choices)
    # The demo is a development tool (`make demo`: python -m devtools.demo), not a command.
    assert "demo" not in commands.choices
    top = endpointctl("--help")
    assert top.returncode == 0
    for command in commands.choices:
        assert command in top.stdout
        result = endpointctl(command, "--help")
        assert result.returncode == 0 and f"usage: endpointctl {command}" in result.stdout, (command, result.stderr)


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


def test_a_failed_transform_writes_nothing_and_names_the_files_line(sample_model, tmp_path):
    from endpointctl.local import LocalEndpoint
    from endpointctl.training import synthetic_transactions

    features, _ = synthetic_transactions(30000, seed=5)
    rows = [",".join(map(repr, row)) for row in features.tolist()]
    rows[26000] = "0.1,0.2,1e39,0.4,0.5"  # far past the first mini-batch: the file's line, not the batch's
    data = tmp_path / "data.csv"
    data.write_text("\n".join(rows) + "\n")
    output = tmp_path / "out"
    with LocalEndpoint(model_data=sample_model, workers=1) as endpoint:
        result = endpointctl("transform", "--local", endpoint.url, "--input", str(data), "--output", str(output),
                             "--max-payload-mb", "1")
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"endpointctl transform: line 26001 of {data}: the endpoint answered 400: ")
    assert "1e+39" in message and "nothing was written" in message
    assert not output.exists()  # not even the folder it would have created


BAD_COMMAND_LINES = [
    # (arguments, environment, words of the one-line error)
    (["serve", "--model-data", "m.tar.gz", "--port", "99999"], {}, "--port: got '99999'; allowed: a port from 1 to 65535"),
    (["invoke", "--local", "http://127.0.0.1:99999", "--body", "{}"], {}, "the port is not a number from 1 to 65535"),
    (["invoke", "--local", "http://127.0.0.1:abc", "--body", "{}"], {}, "the port is not a number"),
    (["invoke", "--local", "127.0.0.1:8080", "--body", "{}"], {}, "no http:// or https:// scheme"),
    (["invoke", "--local", "http://127.0.0.1:8080", "--body", "\udcff"], {}, "--body: got '\\udcff', which is not UTF-8 text"),
    (["invoke", "--local", "http://127.0.0.1:8080", "--body", "{}", "--content-type", "a\r\nb"], {}, "--content-type: got"),
    (["invoke", "--endpoint-name", "bad name!", "--body", "{}"], {}, "--endpoint-name: got 'bad name!'"),
    (["status"], {"AWS_ENDPOINT_URL": "localhost:9"}, "AWS_ENDPOINT_URL: got 'localhost:9': it has no http:// or https:// scheme"),
    (["status"], {"AWS_MAX_ATTEMPTS": "abc"}, "AWS_MAX_ATTEMPTS: got 'abc'; allowed: a number of attempts"),
    (["transform", "--input", "x.csv", "--max-concurrent-transforms", "-1"], {}, "--max-concurrent-transforms: got '-1'"),
    (["transform", "--input", "x.csv", "--max-payload-mb", "0"], {}, "--max-payload-mb: got '0'"),
    (["transform", "--input", "x.csv", "--max-payload-mb", "50", "--max-concurrent-transforms", "3"], {}, "a product of at most 100"),
    (["train-sample", "--rows", "0"], {}, "--rows: got '0'; allowed: a number of rows from 100 to 1000000"),
    (["cost", "--requests-per-day", "-1000"], {}, "--requests-per-day: got '-1000'; allowed: a finite number >= 0"),
    (["cost", "--duration-ms", "nan"], {}, "--duration-ms: got 'nan'"),
    (["serve", "--model-data", "m.tar.gz"], {"SAGEMAKER_MODEL_SERVER_WORKERS": "abc"}, "SAGEMAKER_MODEL_SERVER_WORKERS='abc': allowed:"),
    (["serve", "--model-data", "m.tar.gz"], {"SAGEMAKER_MODEL_SERVER_WORKERS": "100000"}, "allowed: a whole number of worker processes from 1 to 256"),
    (["serve", "--model-data", "m.tar.gz"], {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "-3"}, "SAGEMAKER_MODEL_SERVER_TIMEOUT='-3'"),
    (["serve", "--model-data", "m.tar.gz", "--program", "../evil.py"], {}, "--program: got '../evil.py'"),
    (["preflight", "--model-data", "m.tar.gz", "--max-response-bytes", "-5"], {}, "--max-response-bytes: got '-5'"),
    (["nonsense"], {}, "invalid choice: 'nonsense'"),
]


@pytest.mark.parametrize("argv, env, words", BAD_COMMAND_LINES, ids=[" ".join(a) for a, _, _ in BAD_COMMAND_LINES])
def test_bad_values_are_one_line_naming_the_value(argv, env, words, tmp_path):
    result = endpointctl(*argv, env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1",
                                     **env}, cwd=ROOT)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr


def test_endpointctl_debug_shows_the_traceback_of_a_bug(monkeypatch, capsys):
    from endpointctl import cli

    def broken(_args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "cost", broken)
    assert cli.main(["cost"]) == 1
    assert capsys.readouterr().err == "endpointctl cost: unexpected ZeroDivisionError: a bug (ENDPOINTCTL_DEBUG=1 shows the traceback)\n"
    monkeypatch.setenv("ENDPOINTCTL_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["cost"])
