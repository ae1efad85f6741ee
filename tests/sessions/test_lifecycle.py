"""TTL expiry: an idle session expires, keeps its record and refuses new work with 409."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import ServerProcess, running_server, wait_for


@pytest.fixture(scope="module")
def short_ttl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("ttl"),
        SESSION_TTL_SECONDS="2",
        CLEANUP_INTERVAL_SECONDS="1",
        MAX_DISPLAYS="2",
        DESKTOP_DISPLAY_BASE="680",
        DESKTOP_USER_PREFIX="cu-tl",
    ) as proc:
        yield proc


def test_idle_session_expires_and_keeps_its_history(short_ttl_server: ServerProcess) -> None:
    with short_ttl_server.client() as http:
        sid = http.post("/api/v1/sessions", json={"title": "short-lived"}).json()["id"]

        def expired() -> dict[str, object] | None:
            body: dict[str, object] = http.get(f"/api/v1/sessions/{sid}").json()
            return body if body["status"] == "expired" else None

        session = wait_for(expired, timeout=15, interval=0.2, what="session expiry")
        assert session["ttl_remaining_seconds"] == 0
        assert session["title"] == "short-lived"
        assert session["vnc_url"] is None
        assert "expired" in str(session["status_detail"])

        refused = http.post(f"/api/v1/sessions/{sid}/messages", json={"content": "hello"})
        assert refused.status_code == 409
        assert "create a new session" in refused.json()["error"]["message"]

        assert http.delete(f"/api/v1/sessions/{sid}").status_code == 204
