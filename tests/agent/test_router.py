"""GET /api/v1/models and the model rule at session creation, against the running service."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from computer_use.agent import catalogue
from computer_use.config import Settings
from tests.helpers import ServerProcess

RETIRED = "claude-sonnet-4-5-20250929"


def test_models_lists_the_catalogue_with_todays_status(server: ServerProcess) -> None:
    today = catalogue.today_utc()
    with server.client() as http:
        listed = http.get("/api/v1/models")
        config = http.get("/api/v1/config").json()
    assert listed.status_code == 200
    body = listed.json()
    assert body["default_model"] == config["default_model"] == "claude-sonnet-5-5"
    assert config["agent_effort"] is None
    rows = {m["id"]: m for m in body["items"]}
    assert list(rows) == [e.id for e in catalogue.CATALOGUE]
    for entry in catalogue.CATALOGUE:
        row = rows[entry.id]
        assert row["status"] == entry.status(today)
        assert (row["tool_path"], row["beta"], row["thinking"]) == (
            entry.tool,
            entry.beta,
            entry.thinking,
        )
        assert (row["input_price_per_mtok"], row["output_price_per_mtok"]) == (
            entry.input_price,
            entry.output_price,
        )
        assert row["replacement"] == entry.replacement
    sonnet = rows["claude-sonnet-5-5"]
    assert (sonnet["status"], sonnet["tool_path"], sonnet["beta"]) == ("current", "toolset", None)
    assert rows[RETIRED]["status"] == "retired" and rows[RETIRED]["retires_on"] == "2026-11-30"


def test_a_retired_model_is_refused_naming_date_and_replacement(server: ServerProcess) -> None:
    with server.client() as http:
        total = http.get("/api/v1/sessions").json()["total"]
        refused = http.post("/api/v1/sessions", json={"title": "Old", "model": RETIRED})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert "retired on 2026-11-30" in error["message"]
        assert "use claude-sonnet-5-5 instead" in error["message"]
        assert http.get("/api/v1/sessions").json()["total"] == total  # nothing was created


@pytest.mark.parametrize(
    ("model", "notice"),
    [
        ("claude-opus-4-5-20251101", "retires on 2027-01-22; move to claude-opus-5-5"),
        ("claude-sonnet-5-5", None),
        ("claude-nova-9", None),  # unknown: passed through
    ],
)
def test_deprecated_and_unknown_models_create_sessions(
    server: ServerProcess, model: str, notice: str | None
) -> None:
    with server.client() as http:
        created = http.post("/api/v1/sessions", json={"model": model})
        assert created.status_code == 201, created.text
        session = created.json()
        assert session["model"] == model
        if notice is None:
            assert session["model_notice"] is None
        else:
            assert notice in session["model_notice"]
        assert (
            http.get(f"/api/v1/sessions/{session['id']}").json()["model_notice"]
            == (session["model_notice"])
        )
        http.delete(f"/api/v1/sessions/{session['id']}")


def test_a_retired_default_model_stops_the_server_from_starting() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, default_model=RETIRED)
    assert "retired on 2026-11-30" in str(refused.value)
    assert Settings(_env_file=None, default_model="claude-opus-4-5").default_model
