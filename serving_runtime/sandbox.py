"""Run code that loads an untrusted model away from credentials.

Loading a joblib/pickle runs whatever code the file names. Every model load outside the
serving container (the preflight at synth and in the CLI, `endpointctl serve`, the
release plan's model diff) happens in a child process that gets:
- an environment built from an allow-list (no `AWS_*`, no tokens of CI systems), with
  the shared config and credentials files pointed at an empty file and botocore's
  instance-metadata look-up switched off;
- a scratch folder as its `HOME` and `TMPDIR` (so `~/.aws`, `~/.netrc`, `~/.docker` are
  not there), removed after;
- a filesystem shut by `serving_runtime.confinement`: the caller's homes and credential
  files hidden, everything else read-only, only the scratch folder writable (Landlock,
  else user + mount namespaces; where neither works, each load says so in one line);
- an address-space limit and, for `run`, a time limit;
- no network at all when the caller needs none (a new network namespace, where the
  kernel allows one): the instance-metadata service cannot be reached by raw HTTP
  either. Where it is not allowed, `network_isolated` says so.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from serving_runtime.confinement import LANDLOCK, NAMESPACES, NONE, Confinement, landlock_abi

# What a Python child needs from the parent's environment; everything else is dropped.
# (TMPDIR is not passed: the child's is its scratch folder, made in the caller's TMPDIR.)
INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV", "PYTHONPATH",
             "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SYSTEMROOT")
# The limits on a model's code, wherever it runs (preflight, scoring, `serve`): each
# process's address space (generous for a fraud model, a few hundred MB loaded; a bomb
# stops at MemoryError), and the time to load the model and answer a few requests (a
# fraud model takes seconds).
DEFAULT_MEMORY_BYTES = 4 * 1024**3
DEFAULT_TIMEOUT_S = 300
UNCONFINED_WARNING = ("sandbox: this system offers neither Landlock nor user namespaces, so the model's code "
                      "can read and write every file you can (see the README, \"Loading a model runs its code\")")

# The folder the child imports serving_runtime from (the project, in a checkout).
CODE_ROOT = Path(__file__).resolve().parent.parent


@cache
def network_namespaces_available() -> bool:
    """Whether the child can be given a network namespace of its own (root, or unprivileged user namespaces)."""
    return _works(NONE, isolate_network=True)


@cache
def filesystem_confinement() -> str:
    """How this machine shuts the filesystem for a child: LANDLOCK, NAMESPACES or NONE, the first that works.
    A kernel that reports a Landlock ABI applies it (no trial child: every command pays for this
    once); the namespaces are tried, since a kernel setting or an LSM may refuse them."""
    if landlock_abi() > 0:
        return LANDLOCK
    if _works(NAMESPACES, isolate_network=False):
        return NAMESPACES
    return NONE


def _works(method: str, *, isolate_network: bool) -> bool:
    """Start one trivial child confined so: whether it ran (the kernel, a seccomp filter or
    an LSM may refuse any step). Namespaces and Landlock are Linux's only."""
    if not sys.platform.startswith("linux"):
        return False
    program = shutil.which("true") or sys.executable
    with tempfile.TemporaryDirectory(prefix="untrusted-probe-") if method != NONE else nullcontext("/") as scratch:
        confinement = Confinement.for_child(method=method, scratch=Path(scratch), needed=[program],
                                            isolate_network=isolate_network)
        try:
            return subprocess.run([program], preexec_fn=_in_child(confinement, None), capture_output=True,
                                  timeout=10).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


def _in_child(confinement: Confinement, memory_bytes: int | None) -> Callable[[], None]:
    """The preexec_fn: limits and confinement, or a one-line reason and exit status 126
    (an exception here would reach the caller only as "Exception occurred in preexec_fn")."""
    def confine() -> None:
        try:
            if memory_bytes is not None:
                resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
            confinement.apply()
        except BaseException as error:  # noqa: BLE001 - whatever it is, the child must not run unconfined
            os.write(2, f"sandbox: cannot confine the child ({confinement.method}): {error}\n".encode())
            os._exit(CONFINEMENT_FAILED)
        # The caller's stop signals were blocked across the fork (`UntrustedChild.popen`):
        # their default action from here on, then whatever arrived is delivered.
        for stop in STOP_SIGNALS:
            signal.signal(stop, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    return confine


CONFINEMENT_FAILED = 126
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@dataclass(frozen=True)
class UntrustedChild:
    """How to start one child: its environment, its resource limits, its confinement."""

    env: dict[str, str]
    memory_bytes: int
    network_isolated: bool
    filesystem: str  # LANDLOCK, NAMESPACES or NONE
    scratch: Path
    needs_network: bool = False
    writable: tuple[Path, ...] = ()  # folders besides the scratch one it may write (serve's capture)

    def confinement(self, argv: Sequence[str]) -> Confinement:
        """Readable inside the caller's homes: the interpreter, the project (the child imports
        serving_runtime and the handler from it) and the paths named in `argv`."""
        needed = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.executable, str(CODE_ROOT), *sys.path,
                  *(arg for arg in argv if os.sep in arg)]
        return Confinement.for_child(method=self.filesystem, scratch=self.scratch, needed=needed,
                                     isolate_network=self.network_isolated, deny_tcp=not self.needs_network,
                                     writable=self.writable)

    def preexec_fn(self, argv: Sequence[str]) -> Callable[[], None]:
        return _in_child(self.confinement(argv), self.memory_bytes)

    def run(self, argv: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S, **kwargs) -> subprocess.CompletedProcess:
        """`subprocess.run` in the sandbox; raises subprocess.TimeoutExpired past `timeout_s`."""
        return subprocess.run(list(argv), env=self.env, preexec_fn=self.preexec_fn(argv), timeout=timeout_s, **kwargs)

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """A stop signal sent while the child forks is not lost: between fork and exec the
        child would run the caller's Python handler (which cannot pass it on), so the
        signals stay blocked until the child exists; the caller's handler then sees them."""
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return subprocess.Popen(list(argv), env=self.env, preexec_fn=self.preexec_fn(argv), **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def scrubbed_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    empty = home / "empty"
    empty.touch()
    env.update({
        "HOME": str(home),
        "TMPDIR": str(home),  # the only folder the child may write to
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CONFIG_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    for name, value in (extra or {}).items():
        if name.startswith("AWS_"):
            raise ValueError(f"{name} must not reach a process that loads an untrusted model")
        env[name] = value
    return env


@contextmanager
def untrusted_child(
    *,
    extra_env: Mapping[str, str] | None = None,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    needs_network: bool = False,
    writable: Sequence[Path] = (),
) -> Iterator[UntrustedChild]:
    """A sandbox for one child process; its scratch HOME is removed on exit. `writable`:
    folders it may write besides its scratch one (they must exist)."""
    filesystem = filesystem_confinement()
    if filesystem == NONE:
        print(UNCONFINED_WARNING, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="untrusted-home-") as home:
        yield UntrustedChild(
            env=scrubbed_environment(Path(home), extra_env),
            memory_bytes=memory_bytes,
            network_isolated=not needs_network and network_namespaces_available(),
            filesystem=filesystem,
            scratch=Path(home),
            needs_network=needs_network,
            writable=tuple(writable),
        )
