"""Keeps VNC tokens out of logs.

Browsers can only pass the token in the URL, and uvicorn logs URLs with their query string
(`"WebSocket /api/v1/sessions/.../vnc/websockify?token=..." [accepted]`, access lines for
`/vnc/{id}?token=...`). A token is short-lived, but logs are not: this filter masks it.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"(\btoken=)[^&\s\"']+")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1[redacted]", text)


class VncTokenLogFilter(logging.Filter):
    """Attach to the `uvicorn.access` and `uvicorn.error` loggers (or to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def install_token_log_filter(
    logger_names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error"),
) -> None:
    """Idempotent: create_app may run many times in one process (tests)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, VncTokenLogFilter) for f in logger.filters):
            logger.addFilter(VncTokenLogFilter())
