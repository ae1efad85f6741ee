"""The `computer-use` console script: `serve` and `migrate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from computer_use.config import Settings, format_settings_error

REPO_ROOT = Path(__file__).resolve().parents[2]


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        print(format_settings_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


def migrate(settings: Settings, revision: str = "head") -> None:
    """Applies Alembic migrations to DATABASE_URL."""
    from alembic import command
    from alembic.config import Config

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["settings"] = settings
    command.upgrade(config, revision)


def serve(settings: Settings, host: str, port: int, reload: bool) -> None:
    import uvicorn

    from computer_use.main import configure_logging, create_app

    configure_logging(settings)
    if reload:
        uvicorn.run(
            "computer_use.main:app", host=host, port=port, reload=True, ws_per_message_deflate=False
        )
        return
    # The only websocket is VNC, whose frames are already compressed: deflate would triple the
    # proxy's CPU cost for nothing.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        ws_per_message_deflate=False,
        # Open SSE streams and VNC viewers would hold a SIGTERM forever; after this long
        # they are closed and the lifespan stops runs and desktops.
        timeout_graceful_shutdown=3,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="computer-use", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="serve the API, MCP, VNC proxy and UI on one port")
    p_serve.add_argument("--host", help="bind address (HOST, default 127.0.0.1)")
    p_serve.add_argument("--port", type=int, help="port (PORT, default 8000)")
    p_serve.add_argument("--reload", action="store_true", help="reload on code changes (dev)")
    p_serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    p_migrate = sub.add_parser("migrate", help="apply database migrations")
    p_migrate.add_argument("revision", nargs="?", default="head")
    args = parser.parse_args(argv)

    settings = _settings()
    if args.command == "migrate":
        migrate(settings, args.revision)
        return
    if args.migrate:
        migrate(settings)
    serve(settings, args.host or settings.host, args.port or settings.port, args.reload)


if __name__ == "__main__":
    main(sys.argv[1:])
