"""The console on a server with API_TOKENS: it asks for the token on a 401, keeps it in the
tab's sessionStorage, sends it as a Bearer header and streams through the signed stream_url."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import BrowserContext, expect

from tests.helpers import ServerProcess
from tests.web.conftest import Console, Tab, web_server_env

TOKEN = "tok-console"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("web-auth")
    env = web_server_env(data_dir, 1620, "cu-aw", API_TOKENS=TOKEN)
    proc = ServerProcess(env, data_dir / "server.log").start()
    try:
        yield proc
    finally:
        proc.stop()


async def test_console_asks_for_the_token_and_streams_with_the_signed_url(
    context: BrowserContext, auth_server: ServerProcess
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with auth_server.client() as http:
        created = http.post("/api/v1/sessions", json={"title": "token session"}, headers=headers)
        assert created.status_code == 201
        sid = created.json()["id"]
    try:
        page = await context.new_page()
        tab = Tab(page, Console(), auth_server.base_url)
        await tab.open()
        form = page.locator("#token-form")
        await expect(form).to_be_visible()
        await expect(page.locator("#token-reason")).to_contain_text("Authorization: Bearer")

        await page.fill("#token-input", "wrong-token")
        await page.press("#token-input", "Enter")
        await expect(form).to_be_visible()  # refused again: asked again

        await page.fill("#token-input", TOKEN)
        await page.press("#token-input", "Enter")
        await expect(form).to_be_hidden()
        await expect(page.locator("#token-status")).to_be_visible()
        item = page.locator("#session-list").get_by_text("token session")
        await expect(item).to_be_visible()
        assert await page.evaluate("sessionStorage.getItem('computer-use.api-token')") == TOKEN
        assert await page.evaluate("localStorage.length") == 0

        async with page.expect_response(lambda r: "/stream?token=" in r.url) as streamed:
            await item.click()
        assert (await streamed.value).status == 200
        assert await tab.csp_violations() == []
    finally:
        with auth_server.client() as http:
            http.delete(f"/api/v1/sessions/{sid}", headers=headers)
