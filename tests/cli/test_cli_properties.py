"""endpointctl under generated command lines, run in process: whatever the arguments,
the outcome is an exit code and at most one line on stderr — never a traceback."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from endpointctl import cli
from endpointctl.local import free_port

# What would run for minutes when the arguments are valid is replaced; its arguments
# have been parsed and checked by then, which is what is under test.
COMMANDS = ["train-sample", "preflight", "serve", "invoke", "transform", "status", "cost", "plan",
            "register", "approve", "reject", "compare", "baseline", "monitor", "nonsense", ""]
OPTIONS = ["--out", "--rows", "--seed", "--model-data", "--code", "--program", "--framework-version",
           "--max-response-bytes", "--host", "--port", "--workers", "--timeout", "--env", "--endpoint-name",
           "--local", "--body", "--file", "--content-type", "--accept", "--curl", "--input", "--output",
           "--max-payload-mb", "--max-concurrent-transforms", "--requests-per-day", "--duration-ms", "--base",
           "--head", "--reason", "-h", "--nope", "--", "--capture", "--production", "--shadow", "--ground-truth",
           "--since", "--until", "--format", "--shadow-model-data", "--shadow-variant", "--shadow-percent",
           "--capture-endpoint", "--capture-variant", "--inference-id", "--data", "--labels", "--baseline"]
HOSTILE_VALUES = ["", " ", "0", "-1", "1", "5", "99999", "65536", "abc", "nan", "inf", "-inf", "1e309", "1e-320",
                  "9" * 40, "0x10", "1_000", "١٢", "dev", "prod", "qa", "\udcff", "\x00", "a\nb", "a\r\nb", "../x",
                  "/nonexistent/model.tar.gz", "s3://", "s3://bucket", "s3://b/k", "http://", "http://127.0.0.1:abc",
                  "http://127.0.0.1:99999", "localhost:9", "ftp://x/y", "text/csv", "*/*", "{}", '{"instances": [[1]]}',
                  "1.2-1", "9.9-9", "inference.py", "..", "-", "--", "--port", "-x"]


@pytest.fixture(scope="module", autouse=True)
def nothing_slow(tmp_path_factory):
    """A dead local AWS (refused at once, one attempt), and stand-ins for what would
    train, serve or start a sandboxed child when the arguments are valid."""
    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    for name, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "y"), ("AWS_DEFAULT_REGION", "us-east-1"),
                        ("AWS_MAX_ATTEMPTS", "1")):
        patch.setenv(name, value)
    patch.delenv("ENDPOINTCTL_DEBUG", raising=False)
    patch.setattr("endpointctl.training.write_sample_model", lambda out, rows, seed, holdout_rows=0: out)
    patch.setattr("endpointctl.watch.score_in_sandbox", stand_in_scoring)
    patch.setattr("endpointctl.local.serve_forever", lambda **kwargs: 0)
    patch.setattr("serving_runtime.preflight.sandboxed_exit_code", lambda args: 1)
    patch.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    patch.undo()


def stand_in_scoring(*args: object) -> dict:
    from endpointctl.errors import CommandError

    raise CommandError("scoring replaced in this test")


def run(argv: list[str]) -> tuple[int, str]:
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, stderr.getvalue()


ARGUMENT_VECTORS = st.tuples(
    st.sampled_from(COMMANDS),
    st.lists(st.one_of(st.sampled_from(OPTIONS), st.sampled_from(HOSTILE_VALUES), st.text(max_size=8)), max_size=8),
).map(lambda parts: [parts[0], *parts[1]] if parts[0] else parts[1])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=ARGUMENT_VECTORS)
def test_any_command_line_is_an_exit_code_and_at_most_one_line(argv):
    code, stderr = run(argv)
    assert isinstance(code, int)
    assert "Traceback" not in stderr, (argv, stderr)
    assert len([line for line in stderr.splitlines() if line.strip()]) <= 1, (argv, stderr)
    if code != 0:
        assert stderr.strip(), argv  # a failure says why


@settings(max_examples=150, deadline=None)
@given(command=st.sampled_from(["serve", "invoke", "transform", "cost", "train-sample"]),
       option=st.sampled_from(["--port", "--workers", "--timeout", "--rows", "--seed", "--max-payload-mb",
                               "--max-concurrent-transforms", "--requests-per-day", "--duration-ms", "--local", "--body"]),
       value=st.one_of(st.sampled_from(HOSTILE_VALUES), st.integers().map(str), st.floats().map(str), st.text(max_size=10)))
def test_each_value_is_checked_where_it_is_read(command, option, value):
    code, stderr = run([command, option, value])
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 1, (command, option, value, stderr)
