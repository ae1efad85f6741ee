"""The console's own Markdown renderer and tool descriptions, run in the browser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page

from tests.helpers import ServerProcess

RENDER = """async (source) => {
  const { renderMarkdown } = await import("/js/markdown.js");
  const box = document.createElement("div");
  box.appendChild(renderMarkdown(source));
  return box.outerHTML.slice(5, -6);  // what is inside <div>…</div>
}"""


@pytest.fixture(scope="module")
async def page(browser: Browser, ui_server: ServerProcess) -> AsyncIterator[Page]:
    """One page for all cases: they only call the modules."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(ui_server.base_url + "/")
    await page.wait_for_selector("body[data-ready=true]")
    yield page
    await context.close()


@pytest.mark.parametrize(
    ("source", "html"),
    [
        (
            "Hello **bold** and *it* and `code`",
            ("<p>Hello <strong>bold</strong> and <em>it</em> and <code>code</code></p>"),
        ),
        ("# Title\n\ntext", "<h3>Title</h3><p>text</p>"),
        (
            "- one\n- two\n  - nested\n\n1. first",
            ("<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul><ol><li>first</li></ol>"),
        ),
        (
            "```py\nprint('<b>')\n```",
            ("<pre><code data-language=\"py\">print('&lt;b&gt;')</code></pre>"),
        ),
        (
            "| a | b |\n|---|--:|\n| 1 | 2 |",
            (
                '<div class="table-wrap"><table><thead><tr><th>a</th><th class="align-right">b'
                '</th></tr></thead><tbody><tr><td>1</td><td class="align-right">2</td></tr>'
                "</tbody></table></div>"
            ),
        ),
        ("> quoted", "<blockquote><p>quoted</p></blockquote>"),
        (
            "see https://example.com/a_b.",
            (
                '<p>see <a href="https://example.com/a_b" target="_blank" '
                'rel="noopener noreferrer nofollow">https://example.com/a_b</a>.</p>'
            ),
        ),
        ("snake_case_name and a * b * c", "<p>snake_case_name and a * b * c</p>"),
        ("line one\nline two", "<p>line one<br>line two</p>"),
        # Nothing from the source becomes markup, a script or a dangerous link.
        ("<img src=x onerror=alert(1)>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>"),
        ("[x](javascript:alert(1))", '<p><span class="md-unsafe-link">x</span></p>'),
        (
            "[wiki](https://en.wikipedia.org/wiki/Santiago_(Chile))",
            (
                '<p><a href="https://en.wikipedia.org/wiki/Santiago_(Chile)" target="_blank" '
                'rel="noopener noreferrer nofollow">wiki</a></p>'
            ),
        ),
        ("[x](data:text/html,hi)", '<p><span class="md-unsafe-link">x</span></p>'),
        (
            '[a "q"](https://e.com/?a=1&b=2)',
            (
                '<p><a href="https://e.com/?a=1&amp;b=2" target="_blank" '
                'rel="noopener noreferrer nofollow">a "q"</a></p>'
            ),
        ),
        (
            "![pic](https://evil.example/p.png)",
            (
                '<p><a href="https://evil.example/p.png" target="_blank" '
                'rel="noopener noreferrer nofollow">[image: pic]</a></p>'
            ),
        ),
    ],
    ids=[
        "inline",
        "heading",
        "lists",
        "fenced-code",
        "table",
        "quote",
        "bare-url",
        "no-false-emphasis",
        "line-breaks",
        "html-is-text",
        "javascript-link",
        "parens-in-url",
        "data-link",
        "escaped-attributes",
        "remote-image-is-a-link",
    ],
)
async def test_markdown_becomes_safe_dom(page: Page, source: str, html: str) -> None:
    assert await page.evaluate(RENDER, source) == html


async def test_history_tool_calls_are_described_like_live_ones(page: Page) -> None:
    descriptions = await page.evaluate(
        """async () => {
          const { describeToolUse } = await import("/js/describe.js");
          return [
            describeToolUse("computer", { action: "left_click", coordinate: [512, 300] }),
            describeToolUse("computer", { action: "type", text: "weather Santiago" }),
            describeToolUse("computer", { action: "key", text: "ctrl+l" }),
            describeToolUse("computer", { action: "scroll", coordinate: [10, 20],
                                          scroll_direction: "down", scroll_amount: 3 }),
            describeToolUse("computer", { action: "left_click_drag",
                                          start_coordinate: [1, 2], coordinate: [3, 4] }),
            describeToolUse("bash", { command: "ls -la" }),
            describeToolUse("str_replace_based_edit_tool", { command: "view", path: "/tmp/a" }),
          ];
        }"""
    )
    assert descriptions == [
        "click at (512, 300)",
        "type 'weather Santiago'",
        "press ctrl+l",
        "scroll down 3 at (10, 20)",
        "drag from (1, 2) to (3, 4)",
        "run `ls -la`",
        "view /tmp/a",
    ]
