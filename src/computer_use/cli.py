"""The `computer-use` console script: `serve`, `migrate` and `demo`."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from pydantic import ValidationError

from computer_use.config import Settings, format_settings_error
from computer_use.datadir import prepare_data_dir

if TYPE_CHECKING:
    from fastapi import FastAPI


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        print(format_settings_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


def _lock_instance(settings: Settings) -> None:
    """Refuse to start, before touching anything, while another live instance uses our user
    prefix or displays (desktops/hostlock.py); held until the process exits."""
    from computer_use.desktops.hostlock import InstanceLock, InstanceLockError

    lock = InstanceLock(
        prefix=settings.desktop_user_prefix,
        display_base=settings.desktop_display_base,
        max_displays=settings.max_displays,
    )
    try:
        lock.acquire()
    except InstanceLockError as exc:
        print(f"computer-use: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def migrate(settings: Settings, revision: str = "head") -> None:
    """Applies Alembic migrations to DATABASE_URL (under the migration lock, schema.py)."""
    from computer_use import schema

    prepare_data_dir(settings.data_dir)
    schema.upgrade(settings, revision)


def _refuse_unsafe_start(settings: Settings, host: str) -> Settings:
    """The start-up rules (startup.py), judged on the address actually bound: one line and exit
    2 before anything is touched (e.g. a public bind without API_TOKENS)."""
    from computer_use.startup import refusal

    settings = settings.model_copy(update={"host": host})
    problem = refusal(settings)
    if problem is not None:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    return settings


def serve(settings: Settings, host: str, port: int, reload: bool) -> None:
    from computer_use.main import configure_logging, create_app

    settings = _refuse_unsafe_start(settings, host)
    configure_logging(settings)
    if reload:
        os.environ["HOST"] = host
        uvicorn.run(
            "computer_use.main:app", host=host, port=port, reload=True, ws_per_message_deflate=False
        )
        return
    app = create_app(settings)
    # The only websocket is VNC, whose frames are already compressed: deflate would triple the
    # proxy's CPU cost for nothing.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        ws_per_message_deflate=False,
        # Open VNC viewers (and anything else still open) get this long after a SIGTERM;
        # then they are closed and the lifespan stops runs and desktops.
        timeout_graceful_shutdown=3,
    )
    _StreamClosingServer(config, app).run()


class _StreamClosingServer(uvicorn.Server):
    """Ends every SSE stream as soon as a shutdown signal arrives: uvicorn waits for open
    connections before the app's lifespan may close them, and an event stream never ends by
    itself."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        from computer_use.runtime import installed_runtime

        runtime = installed_runtime(self._app)
        if runtime is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(runtime.bus.close_all)
        super().handle_exit(sig, frame)


def demo(settings: Settings, host: str, port: int) -> None:
    """The whole service, offline: a scripted stand-in for the Anthropic API runs beside it."""
    import threading
    import time

    from pydantic import SecretStr

    from computer_use.loopback.app import LoopbackState
    from computer_use.loopback.app import create_app as create_model_app
    from computer_use.loopback.demo import demo_responder

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        model_port = probe.getsockname()[1]
    state = LoopbackState(demo_responder, api_key=None, delay=0.02, chunk_size=8)
    model = uvicorn.Server(
        uvicorn.Config(
            create_model_app(state), host="127.0.0.1", port=model_port, log_level="warning"
        )
    )
    threading.Thread(target=model.run, name="demo-model", daemon=True).start()
    deadline = time.monotonic() + 10
    while not model.started:
        if time.monotonic() > deadline:
            raise SystemExit("the demo model server did not start")
        time.sleep(0.05)
    # The SDK reads ANTHROPIC_BASE_URL; the key only has to be non-empty for the stand-in,
    # and a real ANTHROPIC_API_KEY from the environment is never sent to it.
    os.environ["ANTHROPIC_BASE_URL"] = f"http://127.0.0.1:{model_port}"
    settings = settings.model_copy(update={"anthropic_api_key": SecretStr("offline-demo")})
    print(
        f"Offline demo: open http://{host}:{port}/ and send e.g. "
        "'Search the weather in Santiago, Chile'. The model is a scripted stand-in "
        "(no network, no API key); the desktop, browser and everything else are real.",
        flush=True,
    )
    migrate(settings)
    serve(settings, host, port, reload=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="computer-use", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="serve the API, MCP, VNC proxy and UI on one port")
    p_serve.add_argument("--host", help="bind address (HOST, default 127.0.0.1)")
    p_serve.add_argument("--port", type=int, help="port (PORT, default 8000)")
    p_serve.add_argument("--reload", action="store_true", help="reload on code changes (dev)")
    p_serve.add_argument(
        "--migrate", action="store_true", help="apply migrations first (the default anyway)"
    )
    p_demo = sub.add_parser("demo", help="serve with a scripted offline model (no API key)")
    p_demo.add_argument("--host", help="bind address (HOST, default 127.0.0.1)")
    p_demo.add_argument("--port", type=int, help="port (PORT, default 8000)")
    p_migrate = sub.add_parser("migrate", help="apply database migrations")
    p_migrate.add_argument("revision", nargs="?", default="head")
    args = parser.parse_args(argv)

    settings = _settings()
    if args.command == "migrate":
        migrate(settings, args.revision)
        return
    _refuse_unsafe_start(settings, args.host or settings.host)
    if not getattr(args, "reload", False) and not settings.ray_address:
        _lock_instance(settings)  # with RAY_ADDRESS the desktops are the hosts' (cluster/)
    if args.command == "demo":
        demo(settings, args.host or settings.host, args.port or settings.port)
        return
    if args.migrate:
        migrate(settings)
    serve(settings, args.host or settings.host, args.port or settings.port, args.reload)


if __name__ == "__main__":
    main(sys.argv[1:])
