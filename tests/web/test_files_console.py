"""The console's files, recording and trajectory parts in a real Chromium: a file dropped on
the desktop lands in the session's ~/Uploads, the panel lists Downloads first, a recorded
session plays in the browser, and an exported trajectory zip opens offline with its clicks
drawn."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.async_api import expect

from computer_use.sessions import trajectory
from computer_use.sessions.models import Message, Session
from tests.helpers import ServerProcess
from tests.web.conftest import Tab, create_session

# A 4x3 red PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAADCAIAAAA7ljmRAAAAEElEQVR4nGP4z8AARww4OQD1MQv1NXv7ggAAAABJRU5ErkJggg=="
)

MAKE_TRANSFER = """([name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, { type: "text/plain" }));
  return transfer;
}"""


async def test_a_file_dropped_on_the_desktop_lands_in_uploads_and_the_panel_lists_it(
    tab: Tab, ui_server: ServerProcess
) -> None:
    session = create_session(ui_server, "drop here")
    page = await tab.open(f"/#/sessions/{session['id']}")
    await expect(page.locator("#files-panel")).to_be_visible()
    # HOME: Downloads first.
    await expect(page.locator("#files-list .file-row").first).to_have_attribute(
        "data-path", "Downloads"
    )

    # Playwright's file drop: a DataTransfer holding the file, dragged in and dropped.
    transfer = await page.evaluate_handle(
        MAKE_TRANSFER, ["dropped notes.txt", "hello from the browser\n"]
    )
    await page.dispatch_event("#conversation", "dragenter", {"dataTransfer": transfer})
    await expect(page.locator("#drop-overlay")).to_be_visible()
    await page.dispatch_event("#drop-overlay", "dragover", {"dataTransfer": transfer})
    await page.dispatch_event("#drop-overlay", "drop", {"dataTransfer": transfer})
    await expect(page.locator("#drop-overlay")).to_be_hidden()
    await expect(page.locator("#files-note")).to_contain_text("Uploaded dropped notes.txt")
    await expect(page.locator("#files-path")).to_have_text("~/Uploads")
    await expect(page.locator('[data-path="Uploads/dropped notes.txt"]')).to_be_visible()
    async with httpx.AsyncClient(base_url=ui_server.base_url) as http:
        got = await http.get(f"/api/v1/sessions/{session['id']}/files/Uploads/dropped notes.txt")
    assert got.status_code == 200 and got.content == b"hello from the browser\n"

    async with page.expect_download() as download_info:
        await page.locator('[data-path="Uploads/dropped notes.txt"] button[title=Download]').click()
    download = await download_info.value
    saved = Path(await download.path())
    assert await asyncio.to_thread(saved.read_bytes) == b"hello from the browser\n"
    assert tab.console.errors == []
    assert await tab.csp_violations() == []


async def test_a_recorded_session_plays_in_the_console(tab: Tab, ui_server: ServerProcess) -> None:
    page = await tab.open("/")
    await page.fill("#create-title", "recorded in the console")
    await page.check("#create-record")
    await page.click("#create-button")
    await expect(page.locator("#recording-button")).to_be_visible(timeout=30_000)
    await page.click("#recording-button")
    await expect(page.locator("#recording-dialog")).to_be_visible()
    await expect(page.locator("#recording-status")).to_contain_text("No agent actions")
    duration = await page.wait_for_function(
        "() => { const v = document.getElementById('recording-video');"
        " return v.readyState >= 1 && v.duration > 0 && v.duration; }",
        timeout=20_000,
    )
    assert await duration.json_value() > 0
    assert tab.console.errors == []
    assert await tab.csp_violations() == []


async def test_an_exported_trajectory_opens_offline_with_clicks_drawn(
    tab: Tab, tmp_path: Path
) -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    session = Session(id="s-1", title="offline run", model="claude-test", created_at=start)
    stored = {"type": "image", "source": {"type": "stored", "image_id": "img-1"}}
    click = {"type": "tool_use", "id": "t1", "name": "computer",
             "input": {"action": "left_click", "coordinate": [2, 1]}}  # fmt: skip
    messages = [
        Message(role="user", content=[{"type": "text", "text": "click it"}], created_at=start),
        Message(
            role="assistant",
            content=[{"type": "text", "text": "Clicking."}, click],
            usage={"input_tokens": 10, "output_tokens": 5},
            created_at=start + timedelta(seconds=2),
        ),
        Message(
            role="user",
            content=[{"type": "tool_result", "tool_use_id": "t1", "content": [stored]}],
            created_at=start + timedelta(seconds=3),
        ),
        Message(
            role="assistant",
            content=[{"type": "text", "text": "Done."}],
            created_at=start + timedelta(seconds=5),
        ),
    ]

    async def load(image_id: str) -> bytes:
        assert image_id == "img-1"
        return PNG

    archive = await trajectory.write_zip(session, messages, load)
    path = tmp_path / "trajectory.zip"
    with archive:
        await asyncio.to_thread(path.write_bytes, archive.read())

    page = await tab.open("/")
    await page.set_input_files("#trajectory-input", str(path))
    await expect(page.locator("#trajectory-dialog")).to_be_visible()
    await expect(page.locator("#trajectory-position")).to_have_text("Step 1 of 2")
    await expect(page.locator("#trajectory-text")).to_contain_text("User: click it")
    await expect(page.locator("#trajectory-canvas")).to_have_attribute("data-clicks", "1")
    size = await page.evaluate(
        "() => [document.getElementById('trajectory-canvas').width,"
        " document.getElementById('trajectory-canvas').height]"
    )
    assert size == [4, 3]
    await page.click("#trajectory-next")
    await expect(page.locator("#trajectory-position")).to_have_text("Step 2 of 2")
    await expect(page.locator("#trajectory-text")).to_contain_text("Done.")
    await expect(page.locator("#trajectory-next")).to_be_disabled()
    assert tab.console.errors == []
    assert await tab.csp_violations() == []
