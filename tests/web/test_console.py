"""The console's shell: loads clean under a strict CSP, manages sessions, stays safe and fits
narrow windows. Real server, real Chromium; no agent needed."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Request, Route, expect

from computer_use.web.router import STATIC_DIR
from tests.helpers import ServerProcess, free_port
from tests.web.conftest import INIT_SCRIPT, Tab, create_session
from tests.web.fakes import FakeStream

XSS_TITLE = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"


def test_static_files_have_no_inline_code_or_html_sinks() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html and " style=" not in html, "inline style"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    for path in STATIC_DIR.rglob("*.js"):
        code = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, f"{path.name} uses {sink}"
        assert "localStorage." not in code, f"{path.name} uses localStorage"
        # Nothing from the network at run time: every import is a file beside this one.
        for source in re.findall(r"""^import .* from ["']([^"']+)["']""", code, re.M):
            assert source.startswith("./"), f"{path.name} imports {source}"
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "a remote resource"


async def test_console_loads_under_a_strict_csp_without_errors(
    tab: Tab, ui_server: ServerProcess, artifacts_dir: Path
) -> None:
    async with httpx.AsyncClient(base_url=ui_server.base_url) as http:
        csp = (await http.get("/")).headers["content-security-policy"]
        assert csp.startswith("default-src 'self'") and "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp
        for asset in ("/css/styles.css", "/js/app.js", "/img/favicon.svg"):
            assert (await http.get(asset)).status_code == 200
        assert (await http.get("/js/../../router.py")).status_code == 404
        assert (await http.get("/js/%2e%2e/%2e%2e/router.py")).status_code == 404

    page = await tab.open("/")
    await expect(page.locator("#server-info")).to_contain_text("claude-sonnet-5-5")
    await expect(page.locator("#welcome")).to_be_visible()
    # The server has no Anthropic key: the console offers the field before anything fails.
    await expect(page.locator("#key-form")).to_be_visible()
    await page.screenshot(path=artifacts_dir / "ui_empty.png")
    assert tab.console.errors == []
    assert await tab.csp_violations() == []


async def test_create_list_and_delete_a_session(
    tab: Tab,
    ui_server: ServerProcess,
    artifacts_dir: Path,
    fake_stream: Callable[..., FakeStream],
) -> None:
    page = await tab.open("/")
    await page.fill("#create-title", "Weather Search Task")
    await page.fill("#create-model", "claude-opus-4-6")
    await page.click("#create-button")

    item = page.locator(".session-item.selected")
    await expect(item.locator(".session-title")).to_have_text("Weather Search Task")
    await expect(item.locator(".status")).to_have_text("Ready")
    await expect(item.locator(".session-model")).to_have_text("claude-opus-4-6")
    await expect(item.locator(".ttl")).to_have_text(re.compile(r"^(59|60):\d\d$"))
    await expect(page.locator("#chat-title")).to_have_text("Weather Search Task")
    await expect(page.locator("#prompt")).to_be_enabled()
    await expect(page.locator("#suggestions")).to_be_visible()
    session_id = await item.get_attribute("data-session-id")
    assert session_id and page.url.endswith(f"#/sessions/{session_id}")
    await page.screenshot(path=artifacts_dir / "ui_session.png")

    await item.locator(".session-delete").click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Weather Search Task")
    await page.screenshot(path=artifacts_dir / "ui_delete_confirm.png")
    await dialog.get_by_role("button", name="Delete").click()
    await expect(page.locator(f'[data-session-id="{session_id}"]')).to_have_count(0)
    await expect(page.locator("#chat-title")).to_have_text("No session selected")
    with ui_server.client() as http:
        assert http.get(f"/api/v1/sessions/{session_id}").status_code == 404
    assert tab.console.errors == []
    assert await tab.csp_violations() == []


async def test_cancelling_the_delete_dialog_keeps_the_session(
    tab: Tab, ui_server: ServerProcess
) -> None:
    session = create_session(ui_server, "Keep me")
    page = await tab.open("/")
    item = page.locator(f'[data-session-id="{session["id"]}"]')
    await item.locator(".session-delete").click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Cancel").click()
    await expect(page.locator("#confirm-dialog")).to_be_hidden()
    await expect(item).to_have_count(1)
    with ui_server.client() as http:
        assert http.get(f"/api/v1/sessions/{session['id']}").status_code == 200


async def test_html_in_a_session_title_is_shown_as_text_and_never_run(
    tab: Tab, ui_server: ServerProcess, fake_stream: Callable[..., FakeStream]
) -> None:
    session = create_session(ui_server, XSS_TITLE)
    page = await tab.open(f"/#/sessions/{session['id']}")
    item = page.locator(f'[data-session-id="{session["id"]}"]')
    await expect(item.locator(".session-title")).to_have_text(XSS_TITLE)
    await expect(page.locator("#chat-title")).to_have_text(XSS_TITLE)
    await expect(page.locator("#confirm-dialog")).to_be_hidden()
    assert await page.locator(".sessions-panel img:not(.brand-mark), main img").count() == 0
    assert await page.evaluate("window.__pwned") is None
    assert tab.console.errors == []


async def test_create_errors_are_shown_with_the_server_message(
    tab: Tab, ui_server: ServerProcess
) -> None:
    page = await tab.open("/")
    await page.fill("#create-title", "Bad model")
    await page.fill("#create-model", "not a model id!")
    await page.click("#create-button")
    error = page.locator("#create-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("model")


@pytest.mark.parametrize(
    ("width", "height", "name"), [(420, 900, "ui_narrow.png"), (1000, 800, "ui_medium.png")]
)
async def test_narrow_windows_stack_the_panels(
    browser: Browser,
    ui_server: ServerProcess,
    artifacts_dir: Path,
    fake_stream: Callable[..., FakeStream],
    width: int,
    height: int,
    name: str,
) -> None:
    session = create_session(ui_server, "Narrow")
    context = await browser.new_context(viewport={"width": width, "height": height})
    try:
        page = await context.new_page()
        await page.goto(f"{ui_server.base_url}/#/sessions/{session['id']}")
        await page.wait_for_selector("body[data-ready=true]")
        await expect(page.locator("#chat-title")).to_have_text("Narrow")
        boxes = []
        for selector in (".sessions-panel", ".chat-panel", ".desktop-panel"):
            box = await page.locator(selector).bounding_box()
            assert box is not None
            boxes.append(box)
        sessions, chat, desktop = boxes
        # The desktop always goes below the conversation; at phone width everything stacks.
        assert desktop["y"] >= chat["y"] + chat["height"] - 1
        if width < 760:
            assert sessions["y"] + sessions["height"] <= chat["y"] + 1
            assert abs(sessions["x"] - chat["x"]) < 1 and abs(chat["x"] - desktop["x"]) < 1
        else:
            assert abs(sessions["y"] - chat["y"]) < 1 and sessions["x"] < chat["x"]
        overflow = await page.evaluate(
            "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
        )
        assert overflow <= 0, "no horizontal scrolling"
        await page.screenshot(path=artifacts_dir / name, full_page=True)
    finally:
        await context.close()


# --- served from somewhere else ---------------------------------------------------------


class _CspHandler(http.server.SimpleHTTPRequestHandler):
    csp = "default-src 'self'"

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", self.csp)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def static_server(ui_server: ServerProcess) -> Iterator[str]:
    """`python -m http.server`-style hosting of the static files, with a strict CSP that
    allows only this origin and the API's."""
    port = free_port()

    class Handler(_CspHandler):
        csp = (
            f"default-src 'self'; connect-src 'self' {ui_server.base_url}; "
            f"img-src 'self' {ui_server.base_url}; frame-src {ui_server.base_url}"
        )

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(Handler, directory=str(STATIC_DIR))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


async def test_console_served_elsewhere_uses_the_api_named_in_the_url(
    browser: Browser,
    ui_server: ServerProcess,
    static_server: str,
    fake_stream: Callable[..., FakeStream],
) -> None:
    session = create_session(ui_server, "Seen from elsewhere")
    context = await browser.new_context()
    await context.add_init_script(INIT_SCRIPT)
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(f"{static_server}/?api={ui_server.base_url}")
        await page.wait_for_selector("body[data-ready=true]")
        await expect(page.locator(f'[data-session-id="{session["id"]}"]')).to_be_visible()
        await expect(page.locator("#server-info")).to_contain_text("127.0.0.1")
        # Cross-origin POST with a JSON body: CORS preflight and all.
        await page.fill("#create-title", "Created from elsewhere")
        await page.click("#create-button")
        await expect(page.locator(".session-item.selected .session-title")).to_have_text(
            "Created from elsewhere"
        )
        assert errors == []
        assert await page.evaluate("window.__cspViolations") == []
    finally:
        await context.close()


async def test_api_in_the_url_must_be_a_loopback_address(tab: Tab) -> None:
    page = await tab.open("/?api=https://attacker.example")
    assert await page.evaluate("window.computerUse.apiBase") == tab.base_url


async def test_capacity_errors_say_when_to_try_again(tab: Tab) -> None:
    async def full(route: Route, request: Request) -> None:
        if request.method != "POST":
            await route.continue_()
            return
        error = {"code": "capacity_reached", "message": "All 20 desktops are in use."}
        await route.fulfill(status=429, json={"error": error}, headers={"Retry-After": "30"})

    await tab.page.route("**/api/v1/sessions", full)
    page = await tab.open("/")
    await page.fill("#create-title", "One too many")
    await page.click("#create-button")
    await expect(page.locator("#create-error")).to_have_text(
        "All 20 desktops are in use. Try again in 0:30."
    )


async def test_the_desktop_is_watched_view_only_until_the_user_takes_control(
    tab: Tab, ui_server: ServerProcess, fake_stream: Callable[..., FakeStream]
) -> None:
    session = create_session(ui_server, "Desktop")
    sid = str(session["id"])
    viewer_loads: list[str] = []

    async def detail(route: Route, request: Request) -> None:
        response = await route.fetch()
        body = await response.json()
        # The contract: `vnc_url` views; `?interactive=true` adds `vnc_interactive_url`.
        body["vnc_url"] = f"/vnc/{sid}?token=view-{len(viewer_loads)}"
        body["vnc_interactive_url"] = None
        if "interactive=true" in request.url:
            body["vnc_interactive_url"] = f"/vnc/{sid}?token=interactive-{len(viewer_loads)}"
        await route.fulfill(response=response, json=body)

    async def viewer(route: Route, request: Request) -> None:
        viewer_loads.append(request.url)
        view_only = "false" if "token=interactive" in request.url else "true"
        html = f'<!doctype html><body data-view-only="{view_only}">desktop</body>'
        await route.fulfill(status=200, content_type="text/html", body=html)

    await fake_stream().install(tab.page)
    await tab.page.route(re.compile(rf".*/api/v1/sessions/{sid}(\?.*)?$"), detail)
    await tab.page.route(f"**/vnc/{sid}?*", viewer)
    page = await tab.open(f"/#/sessions/{sid}")

    frame = page.frame_locator("#desktop-iframe")
    control = page.locator("#control-button")
    await expect(frame.locator("body")).to_have_attribute("data-view-only", "true")
    await expect(page.locator("#desktop-mode")).to_have_text("View only")
    await expect(control).to_have_attribute("aria-pressed", "false")
    await expect(page.locator("#desktop-open")).to_have_attribute("href", re.compile("token=view"))

    await control.click()
    await expect(frame.locator("body")).to_have_attribute("data-view-only", "false")
    await expect(control).to_have_attribute("aria-pressed", "true")
    await expect(control).to_have_text("Release control")
    await expect(page.locator("#desktop-mode")).to_have_text("You're in control")

    await control.click()
    await expect(frame.locator("body")).to_have_attribute("data-view-only", "true")
    await expect(control).to_have_attribute("aria-pressed", "false")
    assert len(viewer_loads) == 3  # one load per change, none for re-minted tokens
    assert tab.console.errors == []
