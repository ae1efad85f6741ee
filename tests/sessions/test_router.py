"""The sessions REST API over real HTTP, once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import uuid

from tests.helpers import ServerProcess


def _assert_error_shape(body: dict[str, object]) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]


def test_session_crud_round_trip(server: ServerProcess) -> None:
    with server.client() as http:
        created = http.post(
            "/api/v1/sessions",
            json={"title": "Weather Search Task", "model": "claude-opus-4-6"},
        )
        assert created.status_code == 201, created.text
        session = created.json()
        assert session["title"] == "Weather Search Task"
        assert session["model"] == "claude-opus-4-6"
        assert session["status"] == "active"
        assert 3590 <= session["ttl_remaining_seconds"] <= 3600
        assert session["created_at"].endswith(("Z", "+00:00"))
        uuid.UUID(session["id"])

        default = http.post("/api/v1/sessions", json={}).json()
        assert default["model"] == "claude-sonnet-5-5"

        listed = http.get("/api/v1/sessions", params={"limit": 1, "offset": 0}).json()
        assert listed["total"] >= 2 and listed["limit"] == 1 and len(listed["items"]) == 1
        assert listed["items"][0]["id"] == default["id"]  # newest first

        detail = http.get(f"/api/v1/sessions/{session['id']}").json()
        assert detail["id"] == session["id"] and detail["messages"] == []

        assert http.delete(f"/api/v1/sessions/{session['id']}").status_code == 204
        gone = http.get(f"/api/v1/sessions/{session['id']}")
        assert gone.status_code == 404
        _assert_error_shape(gone.json())
        assert http.delete(f"/api/v1/sessions/{session['id']}").status_code == 404


def test_bad_input_gets_clear_4xx(server: ServerProcess) -> None:
    with server.client() as http:
        sid = http.post("/api/v1/sessions", json={"title": "bad input"}).json()["id"]
        unknown = str(uuid.uuid4())
        cases = [
            (http.get(f"/api/v1/sessions/{unknown}"), 404, unknown),
            (http.get("/api/v1/sessions/not-a-uuid"), 422, "session_id"),
            (http.get("/api/v1/sessions", params={"limit": -1}), 422, "limit"),
            (http.get("/api/v1/sessions", params={"offset": -5}), 422, "offset"),
            (http.post(f"/api/v1/sessions/{sid}/messages", json={"content": ""}), 422, "content"),
            (http.post(f"/api/v1/sessions/{sid}/messages", json={"content": "   "}), 422, "blank"),
            (http.post(f"/api/v1/sessions/{sid}/messages", json={}), 422, "content"),
            (
                http.post(f"/api/v1/sessions/{sid}/messages", json={"content": "x" * 100_001}),
                413,
                "MAX_MESSAGE_CHARS",
            ),
            (
                http.post(
                    f"/api/v1/sessions/{sid}/messages",
                    content=b"content=hello",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                ),
                422,
                "body",
            ),
            (
                http.post(f"/api/v1/sessions/{sid}/messages", content=b"{not json"),
                422,
                "Content-Type",
            ),
            (
                http.post(
                    f"/api/v1/sessions/{sid}/messages",
                    content=b"{not json",
                    headers={"content-type": "application/json"},
                ),
                422,
                "not valid JSON",
            ),
            (http.post("/api/v1/sessions", json={"title": ""}), 422, "title"),
            (http.post("/api/v1/sessions", json={"title": "a\x00b"}), 422, "control"),
            (http.post("/api/v1/sessions", json={"model": "bad model!"}), 422, "model"),
            (http.post("/api/v1/sessions", json={"title": "x", "colour": "red"}), 422, "colour"),
            (
                http.post(f"/api/v1/sessions/{unknown}/messages", json={"content": "hi"}),
                404,
                unknown,
            ),
            (http.post(f"/api/v1/sessions/{unknown}/cancel"), 404, unknown),
        ]
        for response, status, needle in cases:
            assert response.status_code == status, (response.request.url, response.text)
            body = response.json()
            _assert_error_shape(body)
            assert needle.lower() in response.text.lower(), (needle, response.text)


def test_post_message_without_any_api_key_is_400_saying_how(server: ServerProcess) -> None:
    with server.client() as http:
        sid = http.post("/api/v1/sessions", json={}).json()["id"]
        response = http.post(f"/api/v1/sessions/{sid}/messages", json={"content": "hello"})
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert "X-Anthropic-API-Key" in message and "ANTHROPIC_API_KEY" in message
        cancel = http.post(f"/api/v1/sessions/{sid}/cancel")
        assert cancel.status_code == 200 and cancel.json() == {
            "session_id": sid,
            "cancelled": False,
        }
        assert http.delete(f"/api/v1/sessions/{sid}").status_code == 204


def test_data_survives_a_server_restart(server: ServerProcess) -> None:
    with server.client() as http:
        sid = http.post("/api/v1/sessions", json={"title": "keep me"}).json()["id"]
    server.stop()
    server.start()
    with server.client() as http:
        again = http.get(f"/api/v1/sessions/{sid}")
        assert again.status_code == 200
        assert again.json()["title"] == "keep me"
