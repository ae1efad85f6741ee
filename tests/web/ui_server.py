"""`python -m tests.web.ui_server --port N`: the service with the web console mounted.

Until `main.create_app` includes `computer_use.web.router` itself, this adds it (replacing the
`/` redirect to /docs); once it does, this is exactly `computer-use serve --migrate`.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from starlette.routing import BaseRoute, Route

from computer_use.cli import _settings, migrate
from computer_use.main import configure_logging, create_app
from computer_use.web.router import router as web_router


def _serves(route: BaseRoute, path: str) -> bool:
    return isinstance(route, Route) and route.path == path


def with_console(app: FastAPI) -> FastAPI:
    if any(_serves(r, "/css/{path:path}") for r in app.router.routes):
        return app  # wired in main.py already
    app.router.routes[:] = [r for r in app.router.routes if not _serves(r, "/")]
    app.include_router(web_router)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = _settings()
    migrate(settings)
    configure_logging(settings)
    app = with_console(create_app(settings))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
