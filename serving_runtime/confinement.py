"""Shut the filesystem for a child that loads an untrusted model, with what an
unprivileged Linux process has. Applied between fork and exec (`Confinement.apply`),
so the interpreter that then loads the pickle starts already confined.

Hidden (`hidden_paths`): the caller's home directories, container secrets and the
credential files the caller's AWS_* variables name. Inside a hidden folder, only what
the child must read stays readable: the interpreter, the project, the paths named on
its command line. Writable: the child's scratch folder only.

- Landlock (Linux 5.13+, where the kernel enables it): read and execute rules beneath
  every folder but the hidden ones, a full rule on the scratch folder. With ABI 4+ TCP
  bind/connect are refused too (when the child needs no network), with ABI 6+ signals
  and abstract Unix sockets outside the sandbox. A Landlocked process cannot ptrace
  outside it, so the caller's /proc/<pid>/environ and /proc/<pid>/root are shut too.
- Otherwise user and mount namespaces: hidden folders covered by an empty tmpfs (the
  exceptions bound back in), hidden files by /dev/null, every mount read-only except
  the scratch folder, and /proc covered (the caller's /proc/<pid>/root would lead back
  out of the namespace, its /proc/<pid>/environ holds what the child was not given).
- Otherwise nothing: the sandbox says so on every load.

A network namespace, when wanted, is made in the same unshare(2) as the user namespace.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import re
import struct
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Iterable

LANDLOCK = "landlock"
NAMESPACES = "namespaces"
NONE = "none"

_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
# Landlock's filesystem rights, by the ABI version that introduced them.
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_REMOVE_FILE, _FS_MAKE_REG = 1 << 5, 1 << 8
_FS_ABI1 = (1 << 13) - 1  # execute ... make_sym
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_FILE_ONLY = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 1, 2, 4, 8, 32
_MS_NOATIME, _MS_NODIRATIME, _MS_BIND, _MS_REC, _MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 18
_MS_RELATIME, _MS_STRICTATIME = 1 << 21, 1 << 24
# Flags a remount inside a user namespace must keep (the kernel locks them).
_KEPT_MOUNT_FLAGS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC, "noatime": _MS_NOATIME,
                     "nodiratime": _MS_NODIRATIME, "relatime": _MS_RELATIME, "strictatime": _MS_STRICTATIME}


class ConfinementError(OSError):
    pass


@cache
def _libc() -> ctypes.CDLL:
    """libc with every function used here looked up: the child, forked from a process that
    may run other threads, must not take the dynamic loader's lock (dlsym) to find them."""
    libc = ctypes.CDLL(None, use_errno=True)
    for name in ("syscall", "prctl", "unshare", "mount"):
        hasattr(libc, name)  # looks it up once; where it is missing (macOS) the child fails to confine, and says so
    if hasattr(libc, "syscall"):
        libc.syscall.restype = ctypes.c_long
    return libc


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise ConfinementError(errno, f"{what}: {os.strerror(errno)}")
    return result


@cache
def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where it has none (not Linux, too old, not enabled)."""
    if not sys.platform.startswith("linux"):  # elsewhere syscall 444 is something else, or nothing
        return 0
    try:
        version = _libc().syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                                  ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):  # no libc syscall(): not Linux
        return 0
    return max(int(version), 0)


SHARED_MEMORY = "/dev/shm"
# Where credentials live outside a home: container secrets (Kubernetes service-account and
# EKS web-identity tokens, Docker secrets), and the files the caller's AWS_* variables name.
SECRET_FOLDERS = ("/run/secrets", "/var/run/secrets")
CREDENTIAL_FILE_VARIABLES = ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")


def hidden_paths() -> tuple[str, ...]:
    """What the child may not read: the caller's home directories ($HOME, the password
    database's, and where homes live), container secrets, and the credential files the
    caller's environment names."""
    hidden = {"/root", "/home", *SECRET_FOLDERS}
    hidden.update(os.environ[name] for name in ("HOME", *CREDENTIAL_FILE_VARIABLES) if os.environ.get(name))
    try:
        hidden.add(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        pass
    resolved = {os.path.realpath(path) for path in hidden if os.path.isabs(path)}
    return tuple(sorted(path for path in resolved if path != "/"))


def _beneath(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass(frozen=True)
class Confinement:
    """What one child may touch: `readable` paths are exceptions inside `hidden`;
    `scratch` is where it may write, and the `writable` folders its caller named (a
    capture folder the server writes to, nothing else)."""

    method: str
    scratch: str
    hidden: tuple[str, ...]
    readable: tuple[str, ...]
    isolate_network: bool  # a network namespace of its own
    deny_tcp: bool = False  # Landlock ABI 4+: no TCP bind or connect (with or without the namespace)
    read_roots: tuple[str, ...] = ()  # Landlock's read rules, found before the fork
    writable: tuple[str, ...] = ()

    @classmethod
    def for_child(cls, *, method: str, scratch: Path, needed: Iterable[str], isolate_network: bool,
                  deny_tcp: bool = False, writable: Iterable[Path] = ()) -> Confinement:
        hidden = hidden_paths()
        scratch_path = os.path.realpath(scratch)
        readable = set()
        for path in needed:
            real = os.path.realpath(path)
            # Only what lies inside a hidden folder needs an exception, and never a whole one (or what holds one).
            if os.path.exists(real) and any(_beneath(real, home) for home in hidden) and not any(
                    _beneath(home, real) for home in hidden):
                readable.add(real)
        # The outermost only: a rule (or a bind mount) covers what lies beneath.
        readable_sorted = tuple(path for path in sorted(readable)
                                if not any(_beneath(path, other) for other in readable if other != path))
        if method != NONE or isolate_network:
            _libc()  # looked up here, not in the child
        return cls(method=method, scratch=scratch_path, hidden=hidden, readable=readable_sorted,
                   isolate_network=isolate_network, deny_tcp=deny_tcp,
                   writable=tuple(os.path.realpath(path) for path in writable),
                   read_roots=tuple(_readable_roots("/", hidden, readable_sorted)) if method == LANDLOCK else ())

    def apply(self) -> None:
        """Run in the child, between fork and exec."""
        if self.isolate_network or self.method == NAMESPACES:
            flags = _CLONE_NEWUSER | (_CLONE_NEWNET if self.isolate_network else 0)
            _enter_user_namespace(flags | (_CLONE_NEWNS if self.method == NAMESPACES else 0))
        if self.method == NAMESPACES:
            _shut_with_mounts(self)
        elif self.method == LANDLOCK:
            _shut_with_landlock(self)


def _enter_user_namespace(flags: int) -> None:
    """unshare(2) into new namespaces as root of a user namespace mapped to the caller's ids."""
    uid, gid = os.getuid(), os.getgid()
    _check(_libc().unshare(ctypes.c_int(flags)), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as stream:
            stream.write(text)


# --- Landlock -----------------------------------------------------------------------

def _shut_with_landlock(confinement: Confinement) -> None:
    abi = landlock_abi()
    handled = _FS_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0) | (
        _FS_IOCTL_DEV if abi >= 5 else 0)
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 and confinement.deny_tcp else 0
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", handled, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    libc = _libc()
    ruleset = _check(libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)),
                     "landlock_create_ruleset")
    try:
        read = _FS_READ_FILE | _FS_READ_DIR | _FS_EXECUTE
        for path in confinement.read_roots:
            _allow(ruleset, path, read)
        for folder in (confinement.scratch, *confinement.writable):
            _allow(ruleset, folder, handled)
        _allow(ruleset, "/dev/null", _FS_READ_FILE | _FS_WRITE_FILE)
        # POSIX semaphores and shared memory (joblib tests for them at import, and falls back
        # to serial with a warning): plain files only.
        _allow(ruleset, SHARED_MEMORY, _FS_READ_FILE | _FS_WRITE_FILE | _FS_MAKE_REG | _FS_REMOVE_FILE
               | (_FS_TRUNCATE if abi >= 3 else 0))
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check(libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _readable_roots(folder: str, hidden: tuple[str, ...], readable: tuple[str, ...]) -> list[str]:
    """What may be read, as whole trees: `folder` itself unless a hidden path lies in it,
    then its entries one by one (the hidden path left out, its exceptions put back)."""
    if any(_beneath(folder, home) for home in hidden):
        return [path for path in readable if _beneath(path, folder)]
    if not any(_beneath(home, folder) for home in hidden):
        return [folder]
    roots = []
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    for entry in entries:
        path = os.path.join(folder, entry)
        # A rule binds a symlink's target, which may hold a home: the target has its own turn in this walk.
        if not os.path.islink(path):
            roots += _readable_roots(path, hidden, readable)
    return roots


def _allow(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:  # gone since it was listed, or a dangling symlink: nothing to allow
        return
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            access &= _FS_FILE_ONLY
        rule = struct.pack("=Qi", access, fd)
        _check(_libc().syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                               rule, ctypes.c_uint32(0)), f"landlock_add_rule {path}")
    finally:
        os.close(fd)


# --- User and mount namespaces ------------------------------------------------------

def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = (lambda text: None if text is None else text.encode())
    _check(_libc().mount(encode(source), target.encode(), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {target}")


def _shut_with_mounts(confinement: Confinement) -> None:
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing below propagates back to the caller
    kept = confinement.readable + (confinement.scratch,) + confinement.writable
    held = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in kept}  # reachable once the homes are covered
    for path in confinement.hidden:
        if any(_beneath(path, other) for other in confinement.hidden if other != path):
            continue  # covered with what holds it
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=64k,mode=755")
        elif os.path.exists(path):  # a credentials file: read as empty
            _mount("/dev/null", path, None, _MS_BIND)
    for path, fd in held.items():
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        elif not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w").close()
        _mount(f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC)
        os.close(fd)
    _remount_read_only(except_beneath=(confinement.scratch, *confinement.writable))
    if os.path.isdir(SHARED_MEMORY):  # POSIX semaphores and shared memory: a private, empty one
        _mount("tmpfs", SHARED_MEMORY, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "size=64m,mode=1777")
    try:
        os.chdir(os.getcwd())  # the working folder, looked up again through the new mounts
    except OSError:
        os.chdir(confinement.scratch)
    _mount("tmpfs", "/proc", "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "size=4k,mode=555")


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _remount_read_only(*, except_beneath: tuple[str, ...]) -> None:
    with open("/proc/self/mountinfo") as stream:
        mounts = [line.split() for line in stream]
    failed = []
    for fields in mounts:
        point = _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), fields[4])  # \040 is a space
        if any(_beneath(point, folder) for folder in except_beneath) or _beneath(point, "/proc"):  # /proc is covered next
            continue
        flags = sum(_KEPT_MOUNT_FLAGS.get(option, 0) for option in fields[5].split(","))
        try:
            _mount(None, point, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | flags)
        except ConfinementError as error:
            if os.path.exists(point):  # a mount covered by another one is out of reach anyway
                failed.append(f"{point} ({error.strerror})")
    if failed:
        raise ConfinementError(0, f"cannot make read-only: {', '.join(failed)}")
