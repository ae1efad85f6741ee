"""GET /api/v1/models: the model catalogue (agent.catalogue), with each model's status today."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from computer_use.agent import catalogue
from computer_use.agent.schemas import ModelsPublic
from computer_use.deps import SettingsDep

router = APIRouter(tags=["models"])


@router.get("/api/v1/models", response_model=ModelsPublic, summary="The model catalogue")
async def list_models(settings: SettingsDep) -> dict[str, Any]:
    today = catalogue.today_utc()
    items = [
        {
            "id": entry.id,
            "name": entry.name,
            "family": entry.family,
            "status": entry.status(today),
            "retires_on": entry.retires_on,
            "replacement": entry.replacement,
            "tool_path": entry.tool,
            "beta": entry.beta,
            "thinking": entry.thinking,
            "input_price_per_mtok": entry.input_price,
            "output_price_per_mtok": entry.output_price,
        }
        for entry in catalogue.CATALOGUE
    ]
    return {"default_model": settings.default_model, "items": items}
