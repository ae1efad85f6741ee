"""One real desktop (Xvfb + x11vnc) and one real app server for all VNC tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from computer_use.vnc import VncTokens
from tests.vnc.vnc_helpers import (
    DEAD_PORT,
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
def vnc_stack(x_display: XDisplay) -> Iterator[VncStack]:
    port, x11vnc = start_x11vnc(x_display)
    # Bound but never listening: connections to it are refused for as long as we hold it,
    # which a merely "free" port cannot promise while other suites start servers.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    tokens = VncTokens(secret=SECRET, ttl_seconds=120)
    targets = RecordingTargets(
        {SESSION: port, OTHER_SESSION: port, NO_DESKTOP: None, DEAD_PORT: dead.getsockname()[1]}
    )
    server = ServerThread(build_app(tokens, targets))
    try:
        yield VncStack(x_display, port, tokens, targets, server)
    finally:
        server.stop()
        stop_process(x11vnc)
        dead.close()
