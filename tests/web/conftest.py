"""The console in a real Chromium against the real server (one per module, on SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.conftest import server_env
from tests.helpers import ServerProcess
from tests.web.fakes import Answer, FakeStream

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
WIDE: ViewportSize = {"width": 1440, "height": 900}

# Records every Content-Security-Policy violation the page hits.
INIT_SCRIPT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""


def web_server_env(
    data_dir: Path, display_base: int, user_prefix: str, **extra: str
) -> dict[str, str]:
    """Our own displays and desktop users, apart from other suites running at the same time."""
    return server_env(
        data_dir,
        DESKTOP_DISPLAY_BASE=str(display_base),
        DESKTOP_USER_PREFIX=user_prefix,
        MAX_DISPLAYS="4",
        **extra,
    )


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server (no Anthropic key) for every console test that needs no agent run."""
    data_dir = tmp_path_factory.mktemp("web")
    env = web_server_env(data_dir, 860, "cu-wb")
    proc = ServerProcess(env, data_dir / "server.log").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(autouse=True)
def _delete_sessions_after_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each session holds a desktop: leave none behind for the next test."""
    yield
    if "ui_server" not in request.fixturenames:
        return
    server: ServerProcess = request.getfixturevalue("ui_server")
    with server.client() as http:
        for session in http.get("/api/v1/sessions", params={"limit": 200}).json()["items"]:
            http.delete(f"/api/v1/sessions/{session['id']}")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


# The embedded VNC viewer is its own page (vnc/): what it logs is not the console's.
VIEWER_PATHS = ("/vnc/", "/novnc/")


@dataclass
class Console:
    """What the page said: console errors and uncaught exceptions (the viewer's apart)."""

    errors: list[str] = field(default_factory=list)
    viewer_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = str(message.location.get("url", ""))
        line = f"{message.text} @ {url}"
        viewer = any(path in url for path in VIEWER_PATHS)
        (self.viewer_errors if viewer else self.errors).append(line)

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")


@dataclass
class Tab:
    page: Page
    console: Console
    base_url: str

    async def open(self, path: str = "/") -> Page:
        await self.page.goto(self.base_url + path)
        await self.page.wait_for_selector("body[data-ready=true]")
        return self.page

    async def csp_violations(self) -> list[str]:
        violations: list[str] = await self.page.evaluate("window.__cspViolations")
        return violations


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport=WIDE)
    await context.add_init_script(INIT_SCRIPT)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def tab(context: BrowserContext, ui_server: ServerProcess) -> Tab:
    page = await context.new_page()
    console = Console()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    return Tab(page, console, ui_server.base_url)


def create_session(server: ServerProcess, title: str) -> dict[str, object]:
    with server.client() as http:
        response = http.post("/api/v1/sessions", json={"title": title})
        assert response.status_code == 201, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture
def fake_stream() -> Iterator[Callable[..., FakeStream]]:
    """Makes FakeStreams (see fakes.py) and closes them after the test."""
    made: list[FakeStream] = []

    def make(*answers: Answer) -> FakeStream:
        stream = FakeStream(*answers)
        made.append(stream)
        return stream

    yield make
    for stream in made:
        stream.close()


async def create_in_console(page: Page, title: str, *, ask: bool = False) -> str:
    """Create a session through the console's form (`ask`: "Ask me before each action");
    its id once it is the selected session."""
    await page.fill("#create-title", title)
    await page.set_checked("#create-ask", ask)
    await page.click("#create-button")
    item = page.locator(".session-item.selected")
    # Creating boots a desktop: slower while other desktops are busy too.
    await expect(item.locator(".session-title")).to_have_text(title, timeout=30_000)
    session_id = await item.get_attribute("data-session-id")
    assert session_id
    return session_id


async def send(page: Page, prompt: str) -> None:
    """Post `prompt` from the console's prompt box, as a person does."""
    await page.fill("#prompt", prompt)
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.user .user-text").last).to_have_text(prompt)
