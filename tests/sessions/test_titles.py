"""A session created without a title is named after its first message, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from computer_use import schema
from computer_use.config import Settings
from computer_use.database import create_engine, create_sessionmaker
from computer_use.sessions.models import UNTITLED
from computer_use.sessions.records import TITLE_FROM_MESSAGE_CHARS, SessionRecords
from computer_use.sessions.schemas import SessionCreate


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[SessionRecords]:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    await asyncio.to_thread(schema.upgrade, settings, quiet=True)
    engine = create_engine(settings)
    try:
        yield SessionRecords(sessionmaker=create_sessionmaker(engine), settings=settings)
    finally:
        await engine.dispose()


def text(value: str) -> list[dict[str, object]]:
    return [{"type": "text", "text": value}]


async def test_the_first_message_names_an_untitled_session_and_only_the_first(
    service: SessionRecords,
) -> None:
    assert SessionCreate().title == UNTITLED
    session = await service.create(title=SessionCreate().title, model=None)
    await service.add_message(
        session_id=session.id, role="user", content=text("  Find the\n weather   in Lima ")
    )
    assert (await service.get(session_id=session.id)).title == "Find the weather in Lima"
    await service.add_message(session_id=session.id, role="user", content=text("And Quito?"))
    assert (await service.get(session_id=session.id)).title == "Find the weather in Lima"


async def test_a_long_first_message_is_cut_and_a_given_title_is_kept(
    service: SessionRecords,
) -> None:
    untitled = await service.create(title=UNTITLED, model=None)
    await service.add_message(session_id=untitled.id, role="user", content=text("word " * 40))
    title = (await service.get(session_id=untitled.id)).title
    assert len(title) == TITLE_FROM_MESSAGE_CHARS and title.endswith("…")

    titled = await service.create(title="Mine", model=None)
    await service.add_message(session_id=titled.id, role="user", content=text("rename me"))
    assert (await service.get(session_id=titled.id)).title == "Mine"
