"""Health, readiness, public config, /llms.txt and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import ServerProcess


def test_health_and_readiness(server: ServerProcess) -> None:
    with server.client() as http:
        health = http.get("/api/v1/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        ready = http.get("/api/v1/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "desktops": "ok"}


def test_config_holds_no_secret(server: ServerProcess) -> None:
    with server.client() as http:
        body = http.get("/api/v1/config")
    assert body.status_code == 200
    config = body.json()
    assert config["session_ttl_seconds"] == 3600
    assert config["max_displays"] == 4  # as the fixture set it
    flags = {"server_api_key_configured", "secret_key_configured"}
    assert not any("key" in k and k not in flags for k in config)
    assert config["secret_key_configured"] is False  # generated into DATA_DIR/secret_key
    secret_key = (Path(server.env["DATA_DIR"]) / "secret_key").read_text().strip()
    assert config["mcp_task_wait_seconds"] == 40
    assert config["api_provider"] == "anthropic" and config["aws_region"] is None
    assert {"cloud_ml_region", "anthropic_vertex_project_id"} <= set(config)
    assert "sk-ant" not in body.text and "postgres@" not in body.text
    assert secret_key not in body.text


def test_llms_txt_names_every_public_route(server: ServerProcess) -> None:
    with server.client() as http:
        spec = http.get("/openapi.json").json()
        text = http.get("/llms.txt")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    for extra in ("/mcp", "/vnc/{session_id}", "/vnc/websockify"):
        assert extra in text.text
    for path, methods in spec["paths"].items():
        for method in methods:
            assert f"{method.upper()} {path}" in text.text


def test_openapi_declares_error_responses(server: ServerProcess) -> None:
    with server.client() as http:
        spec = http.get("/openapi.json").json()
    assert "ErrorBody" in spec["components"]["schemas"]
    post_message = spec["paths"]["/api/v1/sessions/{session_id}/messages"]["post"]
    assert {"404", "409", "413", "422", "503"} <= set(post_message["responses"])
    assert spec["paths"]["/api/v1/sessions"]["post"]["responses"]["429"]


def test_docs_page_is_served(server: ServerProcess) -> None:
    with server.client() as http:
        docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
