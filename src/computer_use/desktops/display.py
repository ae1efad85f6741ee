"""What runs on a session's display: Xvfb, jwm, x11vnc and Firefox ESR (argv, env, files).

Everything here is per session and lives in the session's runtime directory (on the host's
/run, which the session's private mount namespace shares; its /tmp is private):
`Xauthority` (the display's cookie, owned by the session user) and `jwmrc`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from computer_use.desktops.errors import DesktopStartError
from computer_use.desktops.filesystem import FIREFOX_PROFILE  # relative to HOME
from computer_use.desktops.slots import port_listening, socket_file
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
    vnc_port: int
    width: int
    height: int
    runtime_dir: Path  # host path, also valid inside the sandbox
    home: str  # HOME as the session's programs see it

    @property
    def display(self) -> str:
        return f":{self.display_number}"

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
    def firefox_profile(self) -> str:
        return f"{self.home}/{FIREFOX_PROFILE}"

    def env(self) -> dict[str, str]:
        """What every X client of the session needs."""
        return {"DISPLAY": self.display, "XAUTHORITY": str(self.xauthority)}

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
            "-display", self.display,
            "-auth", str(self.xauthority),
            "-localhost",  # loopback only: the app's websocket proxy is the way in
            "-rfbport", str(self.vnc_port),
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
        return [FIREFOX, "--profile", self.firefox_profile, "--no-remote"]

    def browser_env(self) -> dict[str, str]:
        return {**self.env(), **FIREFOX_ENV}


def components(
    spec: DisplaySpec,
    *,
    wm_running: Callable[[], Awaitable[bool]],
    start_browser: bool,
) -> list[Component]:
    """The desktop's processes, display server first (the Supervisor relies on the order).
    The browser starts with the others only if `start_browser`, else on first use
    (browser.py)."""
    parts = [
        Component(
            "xvfb", spec.xvfb_argv(), spec.env(), essential=True,
            ready=_displayfd_ready, stdout_pipe=True,
            serving=lambda: accepts_connections(socket_file(spec.display_number)),
        ),
        Component("wm", spec.wm_argv(), spec.env(), essential=True,
                  ready=_polled(wm_running, "window manager")),
        Component("vnc", spec.vnc_argv(), spec.env(), essential=True,
                  ready=_polled(_listening(spec.vnc_port), "VNC port")),
    ]  # fmt: skip
    # No readiness check: create() returns while Firefox is still starting.
    parts.append(
        Component(
            "browser", spec.browser_argv(), spec.browser_env(), essential=False,
            restart_on_success=False, autostart=start_browser,
        )
    )  # fmt: skip
    return parts


async def _displayfd_ready(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            line = await proc.stdout.readline()
    except TimeoutError:
        raise DesktopStartError(f"Xvfb not ready after {READY_TIMEOUT:.0f} s") from None
    if not line.strip():
        raise DesktopStartError(f"Xvfb exited ({proc.returncode}) before accepting connections")


def accepts_connections(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _listening(port: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return port_listening(port)

    return check


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


def prepare_runtime_dir(spec: DisplaySpec, cookie: bytes, uid: int, gid: int) -> None:
    """Create the session's runtime dir (0700, the session user's) with its cookie and jwmrc."""
    if spec.runtime_dir.exists():
        shutil.rmtree(spec.runtime_dir)
    spec.runtime_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    spec.runtime_dir.mkdir(mode=0o700)
    os.chown(spec.runtime_dir, uid, gid)
    write_authority(spec.xauthority, session_entries(spec.display_number, cookie), uid=uid, gid=gid)
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
    direct = f'pgrep -u "$(id -u)" -x {FIREFOX} >/dev/null || exec {" ".join(spec.browser_argv())}'
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
