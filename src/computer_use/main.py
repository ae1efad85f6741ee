"""create_app(): routers, error handlers, CORS, and (as they land) MCP, VNC and the web UI.

`uvicorn computer_use.main:app` works: `app` is built on first access from the environment.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from computer_use import __version__
from computer_use.agent.router import router as models_router
from computer_use.auth import install_auth
from computer_use.config import Settings
from computer_use.errors import install_error_handlers
from computer_use.hostguard import install_host_guard
from computer_use.lifespan import lifespan
from computer_use.mcp_server.mount import mount_mcp
from computer_use.security import install_security
from computer_use.sessions.controls_router import router as controls_router
from computer_use.sessions.exports_router import router as exports_router
from computer_use.sessions.files_router import router as files_router
from computer_use.sessions.router import router as sessions_router
from computer_use.signing import load_secret_key
from computer_use.startup import install_startup_rules
from computer_use.streaming.router import router as streaming_router
from computer_use.system.router import router as system_router
from computer_use.vnc import VncTokens, install_token_log_filter, vnc_url_for
from computer_use.vnc import router as vnc_router
from computer_use.web.router import router as web_router


def configure_logging(settings: Settings) -> None:
    level = logging.DEBUG if settings.debug else logging.INFO
    # force: Alembic's fileConfig (run by `serve --migrate`) may have configured the root first.
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # httpx (and the SDK's httpx2) log request URLs at INFO: keep them quiet.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    install_token_log_filter()  # uvicorn's websocket log lines would show ?token=...


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Computer Use Backend",
        version=__version__,
        description="Claude computer-use agents on isolated desktops: REST + SSE, MCP, VNC.",
        lifespan=lifespan,
        debug=False,  # DEBUG only adds tracebacks to our error bodies (errors.py)
    )
    app.state.settings = settings
    install_error_handlers(app, debug=settings.debug)
    # One key signs every URL token (signing.py): from SECRET_KEY or DATA_DIR/secret_key, so
    # tokens survive a restart and processes sharing the key accept each other's.
    secret_key = load_secret_key(settings)
    install_auth(
        app, settings, secret_key=secret_key
    )  # innermost: a 401 carries the security and CORS headers
    install_security(app, settings)  # inside CORS: a 413/429 still carries its headers
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_origin_regex=settings.cors_origin_regex,
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=[
            "Content-Type",
            "X-Anthropic-API-Key",
            "Last-Event-ID",
            "Authorization",
            "X-API-Token",
        ],
        expose_headers=["Retry-After", "Content-Disposition"],
    )
    install_host_guard(app, settings)  # outermost: a foreign Host or Origin reaches nothing
    install_startup_rules(app)
    app.include_router(system_router)
    app.include_router(sessions_router)
    app.include_router(controls_router)
    app.include_router(models_router)
    app.include_router(files_router)
    app.include_router(exports_router)
    app.include_router(streaming_router)
    app.include_router(vnc_router)
    app.include_router(web_router)  # the console at /: last, after every API route
    mount_mcp(app, settings)  # exact /mcp route (no redirect); MCP_ENABLED=false: none
    # Routes outside the OpenAPI document, listed in /llms.txt beside the generated ones.
    app.state.llms_extra_routes = [
        "GET /vnc/{session_id}?token=...: the live desktop viewer (noVNC); use a session's vnc_url",
        "WEBSOCKET /api/v1/sessions/{session_id}/vnc/websockify?token=...: the VNC proxy",
        "GET /: the web console",
    ]
    if settings.api_tokens is not None:
        app.state.llms_extra_routes.append(
            "Authentication: every route but /api/v1/health* needs Authorization: Bearer <token>"
        )
    if settings.mcp_enabled:
        app.state.llms_extra_routes.append(
            "POST /mcp: MCP (Streamable HTTP); tools create_session, execute_task, "
            "get_session_status, destroy_session, take_screenshot, upload_file, list_files; "
            "key in X-Anthropic-API-Key"
        )
    vnc_tokens = VncTokens(secret_key)
    app.state.vnc_tokens = vnc_tokens
    app.state.vnc_url_for = vnc_url_for(vnc_tokens)

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        settings = Settings()
        configure_logging(settings)
        application = create_app(settings)
        globals()["app"] = application
        return application
    raise AttributeError(name)
