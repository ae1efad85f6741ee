"""Landlock scoping: a session's programs reach no abstract unix socket but their own.

Abstract unix sockets (`@name`) have no file and no permissions: they live in the network
namespace, which sessions share with the host, so without this any session could connect to
an abstract socket of any program on the host (other X servers, D-Bus, ...), and the mount
namespace cannot hide them. Landlock (kernel 6.12+, ABI 6) scopes them: a process in a
Landlock domain that asks for `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET` can connect only to
abstract sockets created inside its own domain (by itself or its descendants).

Each program of a session restricts itself in its child before exec (`install`, next to the
seccomp filter), which makes a domain per program: the session's X clients then reach their
own Xvfb through its socket file in the session's private `/tmp/.X11-unix` (Xlib falls back
to the path when the abstract name refuses: xalias.py), never by the host-wide abstract name.
Landlock also treats a look into another domain's `/proc/<pid>` as tracing it: a program sees
only itself and what it started, not the session's other programs (its Xvfb, its browser).
Nothing else is restricted: files, TCP and signals keep their own measures (permissions,
namespaces, nftables, uids).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os

from computer_use.desktops.process import LIBC

# The same numbers on x86_64 and aarch64 (the generic syscall table).
SYS_CREATE_RULESET, SYS_RESTRICT_SELF = 444, 446
CREATE_RULESET_VERSION = 1 << 0
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
MIN_ABI = 6  # the first ABI with scopes


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


@functools.cache
def abi_version() -> int:
    """The kernel's Landlock ABI; 0 when Landlock is missing or turned off at boot."""
    version = LIBC.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    return max(int(version), 0)


@functools.cache
def reason_off() -> str | None:
    """None when sessions can be scoped here, else why not."""
    version = abi_version()
    if version == 0:
        return "the kernel has no Landlock (CONFIG_SECURITY_LANDLOCK, or 'landlock' in lsm=)"
    if version < MIN_ABI:
        return f"Landlock ABI {version} has no socket scoping (needs ABI {MIN_ABI}, Linux 6.12)"
    return None


def enabled() -> bool:
    return reason_off() is None


_ATTR = _RulesetAttr(0, 0, SCOPE_ABSTRACT_UNIX_SOCKET)


def install() -> None:
    """Restrict the calling process (a preexec_fn step: runs in the forked child, as root,
    before its first exec; the domain is inherited by every fork and kept across exec)."""
    size = ctypes.c_size_t(ctypes.sizeof(_ATTR))
    fd = LIBC.syscall(SYS_CREATE_RULESET, ctypes.byref(_ATTR), size, 0)
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"landlock_create_ruleset: {errno.errorcode.get(code, code)}")
    try:
        if LIBC.syscall(SYS_RESTRICT_SELF, fd, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"landlock_restrict_self: {errno.errorcode.get(code, code)}")
    finally:
        os.close(fd)
