"""The display number a session's own X clients use, so they never need a host-wide name.

Xvfb of display N listens on `/tmp/.X11-unix/XN` in the session's private /tmp and on the
abstract name `@/tmp/.X11-unix/XN`, which the whole host shares (the service connects there,
and readiness checks the session's Xvfb holds it). Under the Landlock scope (landlock.py) a
session's programs may not connect to that abstract name: it was made outside their own
domain, so connect() fails with EPERM, and Xlib/xcb give up on EPERM instead of trying the
path. So a sandboxed session's clients use display M = N + ALIAS_OFFSET:

- the service holds `@/tmp/.X11-unix/XM` bound and never listening: the clients' first try
  is refused (ECONNREFUSED), and nobody else can take the name to answer it;
- they fall back to the path `/tmp/.X11-unix/XM`, a symlink to `XN` made by root in the
  session's private /tmp (namespace.py), which reaches the session's own Xvfb;
- the session's cookie file has the same cookie for both numbers (xauth.py).
"""

from __future__ import annotations

import contextlib
import errno
import socket

from computer_use.desktops.sockets import evict

ALIAS_OFFSET = 100_000


def alias_number(display_number: int) -> int:
    return display_number + ALIAS_OFFSET


def alias_name(display_number: int) -> str:
    """The alias's abstract name as /proc/net/unix writes it."""
    return f"@/tmp/.X11-unix/X{alias_number(display_number)}"


def hold(display_number: int, squatters: set[int]) -> socket.socket | None:
    """The alias name of `display_number`, bound by this process (not listening). A holder
    among `squatters` (the pool's uids) is killed first; None when anyone else holds it."""
    name = alias_name(display_number)
    for _attempt in (1, 2):
        held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            held.bind("\0" + name[1:])
            held.set_inheritable(False)
            return held
        except OSError as exc:
            held.close()
            if exc.errno != errno.EADDRINUSE:
                raise
        if not evict(name, squatters, listening=False):
            return None
    return None


def release(held: socket.socket | None) -> None:
    if held is not None:
        with contextlib.suppress(OSError):
            held.close()
