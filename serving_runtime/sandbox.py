"""Run code that loads an untrusted model away from credentials.

Loading a joblib/pickle runs whatever code the file names. Every model load outside the
serving container (the preflight at synth and in the CLI, `endpointctl serve`, the
release plan's model diff) happens in a child process that gets:
- an environment built from an allow-list (no `AWS_*`, no tokens of CI systems), with
  the shared config and credentials files pointed at an empty file and botocore's
  instance-metadata look-up switched off;
- a scratch `HOME` (so `~/.aws`, `~/.netrc`, `~/.docker` are not there), removed after;
- an address-space limit and, for `run`, a time limit;
- no network at all when the caller needs none (a new network namespace through
  `unshare`, where the kernel allows one): the instance-metadata service cannot be
  reached by raw HTTP either. Where it is not allowed, `network_isolated` says so.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

# What a Python child needs from the parent's environment; everything else is dropped.
INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH",
             "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SYSTEMROOT")
# Generous for a fraud model (a few hundred MB loaded); a bomb stops at MemoryError.
DEFAULT_MEMORY_BYTES = 4 * 1024**3
DEFAULT_TIMEOUT_S = 300.0


@cache
def network_namespaces_available() -> bool:
    """Whether `unshare --net` works here (root, or unprivileged user namespaces)."""
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "--net", "--map-root-user", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@dataclass(frozen=True)
class UntrustedChild:
    """How to start one child: its environment, its resource limits, its command prefix."""

    env: dict[str, str]
    memory_bytes: int
    network_isolated: bool

    def command(self, argv: Sequence[str]) -> list[str]:
        prefix = ["unshare", "--net", "--map-root-user"] if self.network_isolated else []
        return prefix + list(argv)

    def preexec_fn(self) -> Callable[[], None]:
        limit = self.memory_bytes

        def limit_memory() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        return limit_memory

    def run(self, argv: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S, **kwargs) -> subprocess.CompletedProcess:
        """`subprocess.run` in the sandbox; raises subprocess.TimeoutExpired past `timeout_s`."""
        return subprocess.run(self.command(argv), env=self.env, preexec_fn=self.preexec_fn(), timeout=timeout_s,
                              **kwargs)

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), env=self.env, preexec_fn=self.preexec_fn(), **kwargs)


def scrubbed_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    empty = home / "empty"
    empty.touch()
    env.update({
        "HOME": str(home),
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
) -> Iterator[UntrustedChild]:
    """A sandbox for one child process; its scratch HOME is removed on exit."""
    with tempfile.TemporaryDirectory(prefix="untrusted-home-") as home:
        yield UntrustedChild(
            env=scrubbed_environment(Path(home), extra_env),
            memory_bytes=memory_bytes,
            network_isolated=not needs_network and network_namespaces_available(),
        )
