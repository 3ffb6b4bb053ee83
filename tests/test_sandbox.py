"""Loading a model runs its code: every load outside the container happens in
`serving_runtime.sandbox`'s untrusted child, which finds no credentials.

The probe is a real pickle whose unpickling looks for AWS credentials the way a
malicious one would: AWS_* variables and other tokens in the environment,
~/.aws/credentials and ~/.aws/config, the files AWS_SHARED_CREDENTIALS_FILE and
AWS_CONFIG_FILE name, botocore's whole credential chain, and a socket to a port
listening in the caller's network. It fails the load with what it found. The same
pickle loaded by a plain child of the same caller finds every planted secret, so the
test can fail.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from serving_runtime.sandbox import network_namespaces_available

SECRETS = {
    "environment": "AKIAENVIRONMENTSECRET",
    "home file": "AKIAHOMEFILESECRET",
    "shared file": "AKIASHAREDFILESECRET",
    "config file": "AKIACONFIGFILESECRET",
    "ci token": "ghp_CITOKENSECRET",
}

PROBE = """
import os, pathlib, socket
found = []
pointers = {"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED"}
found += [f"env {k}={v}" for k, v in os.environ.items() if k.startswith("AWS_") and k not in pointers]
found += [f"env {k}={v}" for k, v in os.environ.items() if "TOKEN" in k or "SECRET" in k]
for path in {pathlib.Path.home() / ".aws" / "credentials", pathlib.Path.home() / ".aws" / "config",
             pathlib.Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")),
             pathlib.Path(os.environ.get("AWS_CONFIG_FILE", "/nonexistent"))}:
    try:
        text = path.read_text()
    except OSError:
        continue
    if text.strip():
        found.append(f"file {path}: {text.strip()!r}")
import botocore.session
credentials = botocore.session.Session().get_credentials()
if credentials is not None:
    found.append(f"botocore {credentials.method}: {credentials.access_key}")
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    network = "reached the caller's network"
except OSError:
    network = "no network"
raise RuntimeError(f"PROBE credentials found: {found or 'none'}; {network}")
"""


class _CredentialProbe:
    def __init__(self, port: int):
        self.code = PROBE.replace("PORT", str(port))

    def __reduce__(self):
        return exec, (self.code, {})  # one namespace for the whole script


@pytest.fixture
def listening_port():
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture
def probe_archive(tmp_path, listening_port) -> Path:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(_CredentialProbe(listening_port), buffer)
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(buffer.getvalue())
        tar.addfile(info, io.BytesIO(buffer.getvalue()))
    return archive


@pytest.fixture
def caller_with_credentials(tmp_path, monkeypatch) -> dict[str, str]:
    """The environment of a CI job that deploys: every place credentials live, planted."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {SECRETS['home file']}\naws_secret_access_key = x\n")
    shared = tmp_path / "shared-credentials"
    shared.write_text(f"[default]\naws_access_key_id = {SECRETS['shared file']}\naws_secret_access_key = x\n")
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\naws_access_key_id = {SECRETS['config file']}\naws_secret_access_key = x\n")
    planted = {
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": SECRETS["environment"],
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_SESSION_TOKEN": "x",
        "AWS_SHARED_CREDENTIALS_FILE": str(shared),
        "AWS_CONFIG_FILE": str(config),
        "GITHUB_TOKEN": SECRETS["ci token"],
    }
    for name, value in planted.items():
        monkeypatch.setenv(name, value)
    return {**os.environ}


def _assert_found_nothing(output: str) -> None:
    assert "PROBE credentials found: none" in output, output
    for where, secret in SECRETS.items():
        assert secret not in output, f"the {where} secret reached the model's code"
    if network_namespaces_available():
        assert "; no network" in output, output


def test_the_probe_finds_every_secret_when_loaded_without_the_sandbox(probe_archive, caller_with_credentials, tmp_path):
    """The control: a plain child of the same caller (what preflight used to be)."""
    with tarfile.open(probe_archive) as tar:
        tar.extractall(tmp_path / "plain")
    result = subprocess.run([sys.executable, "-c", "import joblib, sys; joblib.load(sys.argv[1])",
                             str(tmp_path / "plain" / "model.joblib")], capture_output=True, text=True,
                            env=caller_with_credentials)
    for secret in SECRETS.values():
        assert secret in result.stderr
    assert "reached the caller's network" in result.stderr


def test_the_synth_preflight_loads_the_model_where_no_credentials_are(probe_archive, caller_with_credentials):
    from serving_config.paths import HANDLER_DIR
    from serving_runtime.preflight import PreflightError, preflight_in_subprocess

    with pytest.raises(PreflightError) as refused:
        preflight_in_subprocess(probe_archive, handler_dir=HANDLER_DIR)
    _assert_found_nothing(str(refused.value))


def test_endpointctl_preflight_loads_the_model_where_no_credentials_are(probe_archive, caller_with_credentials):
    result = subprocess.run([sys.executable, "-m", "endpointctl", "preflight", "--model-data", str(probe_archive)],
                            capture_output=True, text=True, env=caller_with_credentials, timeout=120)
    assert result.returncode == 1
    _assert_found_nothing(result.stdout + result.stderr)


def test_endpointctl_serve_loads_the_model_where_no_credentials_are(probe_archive, caller_with_credentials):
    from endpointctl.errors import CommandError
    from endpointctl.local import LocalEndpoint

    with pytest.raises(CommandError) as refused:
        with LocalEndpoint(model_data=probe_archive, env=caller_with_credentials, startup_timeout=60):
            pass
    _assert_found_nothing(str(refused.value))


def test_a_preflight_that_runs_too_long_is_stopped(probe_archive, monkeypatch):
    from serving_runtime import preflight

    with pytest.raises(preflight.PreflightError, match="did not finish within 0.5 s"):
        preflight.run_sandboxed([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5,
                                capture_output=True)


def test_a_model_that_allocates_without_bound_stops_at_the_memory_limit():
    from serving_runtime.sandbox import untrusted_child

    with untrusted_child(memory_bytes=512 * 1024**2) as child:
        result = child.run([sys.executable, "-c", "b = bytearray(1024**3)"], capture_output=True, text=True)
    assert result.returncode != 0 and "MemoryError" in result.stderr


def test_the_sandbox_refuses_to_pass_aws_variables():
    from serving_runtime.sandbox import untrusted_child

    with pytest.raises(ValueError, match="AWS_PROFILE must not reach"):
        with untrusted_child(extra_env={"AWS_PROFILE": "deploy"}):
            pass
