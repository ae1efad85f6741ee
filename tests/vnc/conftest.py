"""One real desktop (Xvfb + x11vnc) and one real app server for all VNC tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from computer_use.vnc import VncTokens
from tests.helpers import wait_for
from tests.vnc.vnc_helpers import (
    DEAD_SOCKET,
    NO_DESKTOP,
    OTHER_SESSION,
    SECRET,
    SESSION,
    RecordingTargets,
    ServerThread,
    VncStack,
    XDisplay,
    build_app,
    paint_root,
    start_x11vnc,
    start_xvfb,
    stop_process,
    viewers_being_handled,
)


@pytest.fixture(scope="session")
def x_display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XDisplay]:
    display = start_xvfb(tmp_path_factory.mktemp("xvfb"))
    try:
        paint_root(display)
        yield display
    finally:
        stop_process(display.proc)


@pytest.fixture(scope="session")
def shared_vnc_stack(
    x_display: XDisplay, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VncStack]:
    directory = tmp_path_factory.mktemp("vnc")
    path, x11vnc = start_x11vnc(x_display, directory)
    # Bound but never listening: connections to it are refused for as long as we hold it.
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(directory / "dead.sock"))
    tokens = VncTokens(secret=SECRET, ttl_seconds=120)
    targets = RecordingTargets(
        {SESSION: path, OTHER_SESSION: path, NO_DESKTOP: None, DEAD_SOCKET: directory / "dead.sock"}
    )
    server = ServerThread(build_app(tokens, targets))
    try:
        yield VncStack(x_display, path, tokens, targets, server)
    finally:
        server.stop()
        stop_process(x11vnc)
        dead.close()


@pytest.fixture
def vnc_stack(shared_vnc_stack: VncStack) -> Iterator[VncStack]:
    """The shared stack, left only once the server has finished with the test's viewers: a
    viewer's handler logs its leaving after the client has closed, and a line logged after
    pytest has closed the test's log capture is reported as a logging error."""
    yield shared_vnc_stack
    wait_for(
        lambda: viewers_being_handled(shared_vnc_stack.server.base_url) == 0,
        timeout=10,
        what="the server to finish with the test's viewers",
    )
