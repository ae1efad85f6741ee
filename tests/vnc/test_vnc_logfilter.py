"""Tokens in URLs never reach the logs."""

from __future__ import annotations

import logging

import pytest

from computer_use.vnc import install_token_log_filter
from computer_use.vnc.logfilter import VncTokenLogFilter

TOKEN = "MTIzOmk6c2Vzcw.AbC-_dEf"


def test_uvicorn_websocket_line_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.vnc.uvicorn-like")
    logger.addFilter(VncTokenLogFilter())
    with caplog.at_level(logging.INFO, logger=logger.name):
        # The shape of uvicorn's "[accepted]" line: the path with its query as an argument.
        logger.info(
            '%s - "WebSocket %s" [accepted]',
            "127.0.0.1:5000",
            f"/api/v1/sessions/s1/vnc/websockify?token={TOKEN}&x=1",
        )
    assert TOKEN not in caplog.text
    assert "token=[redacted]&x=1" in caplog.text


def test_message_without_args_and_dict_args_are_redacted() -> None:
    log_filter = VncTokenLogFilter()
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, f"GET /vnc/s?token={TOKEN}", None, None
    )
    log_filter.filter(record)
    assert record.getMessage() == "GET /vnc/s?token=[redacted]"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%(path)s", None, None)
    record.args = {"path": f"/vnc/s?token={TOKEN}"}
    log_filter.filter(record)
    assert record.getMessage() == "/vnc/s?token=[redacted]"


def test_install_is_idempotent() -> None:
    install_token_log_filter(("test.vnc.idempotent",))
    install_token_log_filter(("test.vnc.idempotent",))
    filters = logging.getLogger("test.vnc.idempotent").filters
    assert sum(isinstance(f, VncTokenLogFilter) for f in filters) == 1
