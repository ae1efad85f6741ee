"""What runs on a session's display: Xvfb, jwm, x11vnc and Firefox ESR (argv, env, files).

Everything here is per session and lives in the session's runtime directory (on the host's
/run; the session's private mount namespace sees this one directory of it), mode 0700 and
owned by the session user: `Xauthority` (the display's cookie), `jwmrc` and `vnc.sock`,
x11vnc's only listener (no TCP port): only the service (root) and the session reach it.

Readiness proves ownership, not just presence: Xvfb is ready when the display's abstract
socket is held by *that* Xvfb process, x11vnc when `vnc.sock` is a socket of the session user
held by *that* x11vnc, so a listener planted by someone else is never taken for the desktop.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from computer_use.desktops.errors import DesktopStartError
from computer_use.desktops.filesystem import FIREFOX_PROFILE, PROFILE_TEMPLATE  # in HOME
from computer_use.desktops.slots import abstract_name
from computer_use.desktops.sockets import (
    accepts_connections,
    evict,
    listener_held_by,
    owned_socket,
)
from computer_use.desktops.supervisor import Component, ReadyCheck
from computer_use.desktops.xauth import session_entries, write_authority

FIREFOX = "firefox-esr"
TRAY_HEIGHT = 30
READY_TIMEOUT = 10.0  # generous: 20 desktops starting at once on 2 cores

# Crash reporter and safe-mode prompts would block an unattended browser after a kill -9.
FIREFOX_ENV = {
    "MOZ_CRASHREPORTER_DISABLE": "1",
    "MOZ_DISABLE_AUTO_SAFE_MODE": "1",
    "MOZ_NO_REMOTE": "1",
    "MOZ_ENABLE_WAYLAND": "0",
    "NO_AT_BRIDGE": "1",  # no accessibility bus: there is no D-Bus session here
}


@dataclass(frozen=True)
class DisplaySpec:
    display_number: int
    width: int
    height: int
    runtime_dir: Path  # host path, also valid inside the sandbox
    home: str  # HOME as the session's programs see it
    # The number the session's own X clients use (xalias.py); None: display_number.
    client_display_number: int | None = None

    @property
    def display(self) -> str:
        """The display as the service reaches it (capture, input, recording)."""
        return f":{self.display_number}"

    @property
    def client_display(self) -> str:
        """The display as the session's own programs reach it."""
        return f":{self.client_display_number or self.display_number}"

    @property
    def display_numbers(self) -> tuple[int, ...]:
        """Every number the display answers to (each gets the session's cookie)."""
        alias = self.client_display_number
        return (self.display_number,) if alias is None else (self.display_number, alias)

    @property
    def xauthority(self) -> Path:
        return self.runtime_dir / "Xauthority"

    @property
    def jwmrc(self) -> Path:
        return self.runtime_dir / "jwmrc"

    @property
    def browser_request(self) -> Path:
        """FIFO: a line written here asks the service to start the browser (browser.py)."""
        return self.runtime_dir / "browser-request"

    @property
    def vnc_socket(self) -> Path:
        return self.runtime_dir / "vnc.sock"

    @property
    def firefox_profile(self) -> str:
        return f"{self.home}/{FIREFOX_PROFILE}"

    def env(self) -> dict[str, str]:
        """What every X client of the session needs."""
        return {"DISPLAY": self.client_display, "XAUTHORITY": str(self.xauthority)}

    def xvfb_argv(self) -> list[str]:
        return [
            "Xvfb",
            self.display,
            "-screen", "0", f"{self.width}x{self.height}x24",
            "-nolisten", "tcp",
            "-auth", str(self.xauthority),
            # Writes the display number to stdout once it accepts connections: readiness
            # without polling the socket.
            "-displayfd", "1",
            # GLX makes Xvfb load Mesa: 38 MB PSS instead of 8 (bench/desktop.py). Firefox
            # renders in software either way.
            "-extension", "GLX",
            # Without it the server resets when its last client leaves (e.g. jwm restarting).
            "-noreset",
        ]  # fmt: skip

    def wm_argv(self) -> list[str]:
        return ["jwm", "-f", str(self.jwmrc)]

    def vnc_argv(self) -> list[str]:
        return [
            "x11vnc",
            "-display", self.client_display,
            "-auth", str(self.xauthority),
            # A unix socket in the 0700 runtime dir, no TCP (v4 or v6): the app's websocket
            # proxy is the only way in.
            "-unixsock", str(self.vnc_socket),
            "-rfbport", "0",
            "-rfbportv6", "-1",
            "-noipv6",
            "-shared",
            "-forever",
            "-nopw",
            "-norc",  # ~/.x11vncrc is in the session's (agent-writable) home
            "-nocmds",
            "-noremote",
            # One MIT-SHM tile: 3 SysV segments instead of 34 (kernel.shmmni caps the whole
            # host at 4096, i.e. ~120 default x11vncs) at no extra CPU (measured).
            "-onetile",
            # XRECORD scroll detection and wireframing cost CPU for every connected viewer
            # and buy nothing on a virtual screen.
            "-noxrecord",
            "-nowf",
            "-nobell",
            "-quiet",
        ]  # fmt: skip

    def browser_argv(self) -> list[str]:
        # A profile that never ran (no prefs.js yet) first gets the template's files, as the
        # session's user: Firefox then skips most of a new profile's set-up (startup_cache.py).
        template, profile = f"{self.home}/{PROFILE_TEMPLATE}", self.firefox_profile
        return ["/bin/sh", "-c", _SEED_AND_EXEC, FIREFOX, template, profile]

    def browser_env(self) -> dict[str, str]:
        return {**self.env(), **FIREFOX_ENV}


# $0 Firefox, $1 the template, $2 the profile.
_SEED_AND_EXEC = (
    'if [ ! -e "$2/prefs.js" ] && [ -d "$1" ]; then cp -R "$1/." "$2/"; fi; '
    'exec "$0" --profile "$2" --no-remote'
)


def components(
    spec: DisplaySpec,
    *,
    uid: int,
    wm_running: Callable[[], Awaitable[bool]],
    start_browser: bool,
    before_server: Callable[[], object] | None = None,
) -> list[Component]:
    """The desktop's processes, display server first (the Supervisor relies on the order).
    The browser starts with the others only if `start_browser`, else on first use
    (browser.py); x11vnc when a viewer comes (viewing.py). `before_server` runs before each
    (re)start of Xvfb (e.g. reclaim the display's name)."""
    abstract = abstract_name(spec.display_number)
    parts = [
        Component(
            "xvfb", spec.xvfb_argv(), spec.env(), essential=True,
            ready=_xvfb_ready(abstract), stdout_pipe=True,
            serving=lambda: accepts_connections(abstract),
            before_start=before_server,
        ),
        Component("wm", spec.wm_argv(), spec.env(), essential=True,
                  ready=_polled(wm_running, "window manager")),
        # Started for the first viewer, stopped after the last (viewing.py); the agent does
        # not need it, so its failure is not the desktop's.
        Component("vnc", spec.vnc_argv(), spec.env(), essential=False,
                  ready=_vnc_ready(spec.vnc_socket, uid), autostart=False,
                  before_start=lambda: _clear_socket_path(spec.vnc_socket, uid)),
    ]  # fmt: skip
    # No readiness check: create() returns while Firefox is still starting.
    parts.append(
        Component(
            "browser", spec.browser_argv(), spec.browser_env(), essential=False,
            restart_on_success=False, autostart=start_browser,
        )
    )  # fmt: skip
    return parts


def _xvfb_ready(abstract: str) -> ReadyCheck:
    """Xvfb wrote its display number (it accepts connections) and the display's abstract
    socket, which the service's X clients connect to, is this Xvfb's and nobody else's."""

    async def ready(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                line = await proc.stdout.readline()
        except TimeoutError:
            raise DesktopStartError(f"Xvfb not ready after {READY_TIMEOUT:.0f} s") from None
        if not line.strip():
            raise DesktopStartError(f"Xvfb exited ({proc.returncode}) before accepting clients")
        if not listener_held_by(abstract, proc.pid):
            raise DesktopStartError(f"{abstract} is held by another process, not this Xvfb")

    return ready


def _vnc_ready(path: Path, uid: int) -> ReadyCheck:
    """`vnc.sock` is a socket of the session user and the listener on it is this x11vnc's."""

    async def ready(proc: asyncio.subprocess.Process) -> None:
        async def mine() -> bool:
            return owned_socket(path, uid) and listener_held_by(str(path), proc.pid)

        await _polled(mine, "VNC socket")(proc)

    return ready


def _clear_socket_path(path: Path, uid: int) -> None:
    """Clear x11vnc's socket path before it starts: the session's user may have put a file or
    a listener of its own there (the directory is the session's), which would keep x11vnc
    from listening or from passing its readiness check. The user's processes listening on
    that name are killed (as squatters of a display's X name are), then the path is removed;
    never followed: a symlink is removed, not its target."""
    evict(str(path), {uid})
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)  # does not follow symlinks inside


def _polled(check: Callable[[], Awaitable[bool]], what: str) -> ReadyCheck:
    """Readiness for programs that announce nothing: poll `check` (backing off) until it
    holds, the program exits, or READY_TIMEOUT passes."""

    async def ready(proc: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        delay = 0.002
        while not await check():
            if proc.returncode is not None:
                raise DesktopStartError(f"{what}: process exited with {proc.returncode}")
            if loop.time() > deadline:
                raise DesktopStartError(f"{what} not ready after {READY_TIMEOUT:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    return ready


def make_runtime_dir(path: Path, uid: int, gid: int) -> None:
    """A fresh, empty runtime dir (0700, the session user's); whatever was there is gone."""
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.mkdir(mode=0o700)
    os.chown(path, uid, gid)


def prepare_runtime_dir(spec: DisplaySpec, cookie: bytes, uid: int, gid: int) -> None:
    """Write the cookie and jwmrc into the runtime dir (made by make_runtime_dir; kept, since
    the session's namespace has it mounted)."""
    if not spec.runtime_dir.is_dir():
        make_runtime_dir(spec.runtime_dir, uid, gid)
    write_authority(
        spec.xauthority, session_entries(spec.display_numbers, cookie), uid=uid, gid=gid
    )
    spec.jwmrc.write_text(jwmrc_text(spec))
    os.chown(spec.jwmrc, uid, gid)


def remove_runtime_dir(spec: DisplaySpec) -> None:
    shutil.rmtree(spec.runtime_dir, ignore_errors=True)


def jwmrc_text(spec: DisplaySpec) -> str:
    # The tray's Firefox button must not start a second instance on the same profile (that
    # only shows "Firefox is already running"); --no-remote keeps sessions from reaching
    # each other's browser, so an existing instance cannot be asked to open a window.
    # Through the service when it listens (a supervised browser, and its status), else direct.
    fifo = spec.browser_request
    argv = shlex.join(spec.browser_argv())
    direct = f'pgrep -u "$(id -u)" -x {FIREFOX} >/dev/null || exec {argv}'
    firefox = f"if [ -p {fifo} ]; then echo open > {fifo}; else {direct}; fi"
    buttons = [
        ("Firefox", firefox),
        ("Terminal", "xterm"),
        ("Files", "pcmanfm"),
    ]
    tray_buttons = "\n".join(
        f'    <TrayButton label="{escape(label)}">exec:{escape(command)}</TrayButton>'
        for label, command in buttons
    )
    menu = "\n".join(
        f'    <Program label="{escape(label)}">{escape(command)}</Program>'
        for label, command in buttons
    )
    return f"""<?xml version="1.0"?>
<JWM>
  <RootMenu onroot="3">
{menu}
  </RootMenu>
  <Tray x="0" y="-1" height="{TRAY_HEIGHT}" autohide="off">
{tray_buttons}
    <Spacer width="4"/>
    <TaskList maxwidth="240"/>
    <Clock format="%H:%M"/>
  </Tray>
  <WindowStyle>
    <Font>Sans-10</Font>
    <Active><Background>#2e6db4</Background><Foreground>#ffffff</Foreground></Active>
  </WindowStyle>
  <TrayStyle><Font>Sans-10</Font></TrayStyle>
  <Desktops width="1" height="1"><Background type="solid">#3a4a5c</Background></Desktops>
  <FocusModel>click</FocusModel>
  <SnapMode distance="10">border</SnapMode>
  <MoveMode>opaque</MoveMode>
  <ResizeMode>opaque</ResizeMode>
</JWM>
"""
