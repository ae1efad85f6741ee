"""A person in the loop, through the real server: approvals, pause / take control / hand back,
questions, and a pending approval across a restart.

The model is the loopback server scripted turn by turn (real SDK, real HTTP); desktops are real.
Typing is checked in a real program: an xterm the agent starts reads one line into a file.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import ToolUse, bash, computer, edit, member, say
from tests.helpers import ServerProcess, running_server, wait_for_async
from tests.reliability.conftest import SseReader, is_type, post_message, wait_status

KEY = "sk-ant-test-key-0123456789"
TIMEOUT = 8  # APPROVAL_TIMEOUT_SECONDS of this module's server
# An xterm filling most of the screen that writes the line typed into it to ~/typed.txt; the
# command returns once the window is mapped (polled with a deadline).
XTERM = (
    "rm -f ~/typed.txt; (xterm -name typed-target -geometry 120x40+0+0 -e bash -c "
    "'read -r line; printf %s \"$line\" > ~/typed.txt' &) ; for i in $(seq 200); do "
    "xwininfo -name typed-target >/dev/null 2>&1 && break; sleep 0.05; done; echo mapped"
)


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer([], chunk_size=64) as server:
        yield server


@pytest.fixture(scope="module")
def hitl_server(
    model: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("hitl"),
        ANTHROPIC_BASE_URL=model.base_url,
        ANTHROPIC_API_KEY=KEY,
        APPROVAL_TIMEOUT_SECONDS=str(TIMEOUT),
        MAX_DISPLAYS="3",
        DESKTOP_DISPLAY_BASE="1860",
        DESKTOP_USER_PREFIX="cu-hl",
    ) as proc:
        yield proc


@pytest.fixture
async def http(hitl_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hitl_server.base_url, timeout=30) as client:
        yield client


class Session:
    """A session of this test, with its event stream read in the background."""

    def __init__(self, http: httpx.AsyncClient, sid: str) -> None:
        self.http, self.id = http, sid
        self.stream = SseReader(http, sid).start()
        self.url = f"/api/v1/sessions/{sid}"

    async def send(self, content: str) -> None:
        await post_message(self.http, self.id, content)

    async def next(self, name: str, *, after: int = 0, timeout: float = 30) -> dict[str, Any]:
        """The first `name` event with an id above `after`."""
        event = await self.stream.until(lambda e: e[1] == name and e[0] > after, timeout)
        return {"_id": event[0], **event[2]}

    def events(self, after: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
        return [e for e in self.stream.events if e[0] > after and not e[1].endswith("_delta")]

    async def answer(self, approval_id: str, decision: str, **extra: Any) -> httpx.Response:
        body = {"decision": decision, **extra}
        return await self.http.post(f"{self.url}/approvals/{approval_id}", json=body)

    async def typed(self) -> str | None:
        """What the xterm got, read through the agent-independent file API."""
        response = await self.http.get(f"{self.url}/files/typed.txt")
        return response.text if response.status_code == 200 else None


@pytest.fixture
async def open_session(http: httpx.AsyncClient) -> AsyncIterator[Any]:
    made: list[Session] = []

    async def make(**body: Any) -> Session:
        response = await http.post("/api/v1/sessions", json={"title": "hitl", **body})
        assert response.status_code == 201, response.text
        made.append(Session(http, response.json()["id"]))
        return made[-1]

    yield make
    for session in made:
        await session.stream.close()
        assert (await http.delete(session.url)).status_code == 204


def results(session: Session, after: int = 0) -> list[dict[str, Any]]:
    return [d for _, t, d in session.events(after) if t == "tool_result"]


# --- approvals --------------------------------------------------------------------------


async def test_approval_policy_is_checked_stored_and_changed(
    http: httpx.AsyncClient, open_session: Any
) -> None:
    bad = await http.post("/api/v1/sessions", json={"approval": ["type", "teleport"]})
    assert bad.status_code == 422 and "teleport" in bad.text and "left_click" in bad.text
    assert (await http.post("/api/v1/sessions", json={"approval": "often"})).status_code == 422

    session = await open_session(approval=["type", "bash"])
    detail = (await http.get(session.url)).json()
    assert detail["approval"] == ["type", "bash"] and detail["held_by"] == "agent"
    patched = await http.patch(session.url, json={"approval": "ask"})
    assert patched.status_code == 200 and patched.json()["approval"] == "ask"
    assert (await http.get(session.url)).json()["approval"] == "ask"
    assert (await http.patch(session.url, json={"approval": ["nope"]})).status_code == 422
    assert (await http.patch(session.url, json={"budgie": 1})).status_code == 422
    assert (await http.patch(session.url, json={"approval": "auto"})).json()["approval"] == "auto"


async def test_ask_pauses_before_typing_and_approve_types_the_text(
    model: LoopbackModelServer, open_session: Any
) -> None:
    session = await open_session(approval=["type"])
    model.add(
        # the first look waits for Firefox's window: the xterm opens above it, not under it
        say("Opening a terminal.", member("screenshot"), bash(XTERM)),
        say("Focusing it.", member("left_click", coordinate=[400, 300])),
        say("Typing.", member("type", text="approved text\n")),
        say("Done."),
    )
    await session.send("type something")
    asked = await session.next("approval_required")
    assert asked["action"] == "type" and asked["input"] == {"text": "approved text\n"}
    assert asked["description"].startswith("type ")
    assert asked["image_url"] and (await session.http.get(asked["image_url"])).status_code == 200
    tool_use = next(d for _, t, d in session.events() if t == "tool_use" and d["name"] == "type")
    assert asked["tool_use_id"] == tool_use["id"]
    detail = (await session.http.get(session.url)).json()
    assert detail["pending_approval_id"] == asked["approval_id"]
    assert await session.typed() is None, "typed before it was approved"

    answered = await session.answer(asked["approval_id"], "approve")
    assert answered.status_code == 200 and answered.json()["decision"] == "approved"
    resolved = await session.next("approval_resolved")
    assert resolved["approval_id"] == asked["approval_id"] and resolved["decision"] == "approved"
    complete = await session.next("message_complete")
    assert complete["stop_reason"] == "end_turn"
    assert await wait_for_async(session.typed, timeout=10, what="the typed file") == "approved text"

    again = await session.answer(asked["approval_id"], "decline")
    assert again.status_code == 409 and "already approved" in again.text
    unknown = await session.answer("00000000-0000-4000-8000-000000000000", "approve")
    assert unknown.status_code == 404
    assert (await session.answer(asked["approval_id"], "maybe")).status_code == 422


async def test_decline_is_an_error_result_and_the_run_goes_on(
    model: LoopbackModelServer, open_session: Any
) -> None:
    session = await open_session(approval="ask")
    model.add(
        say("Looking first.", member("screenshot"), member("zoom", region=[0, 0, 100, 100])),
        say("Cleaning up.", bash("echo should-not-run > ~/declined.txt")),
        say("I will not do that then."),
    )
    await session.send("clean up")
    asked = await session.next("approval_required")
    assert asked["action"] == "bash" and asked["description"].startswith("run `echo")
    # looking never asks: the screenshot and zoom ran already
    assert [r["is_error"] for r in results(session)] == [False, False]
    assert (await session.answer(asked["approval_id"], "decline")).status_code == 200
    complete = await session.next("message_complete")
    assert complete["stop_reason"] == "end_turn"
    declined = results(session)[-1]
    assert declined["is_error"] and "declined" in declined["output"]
    assert "The person declined" in model.requests[-1].last_tool_result_text()
    files = await session.http.get(f"{session.url}/files/declined.txt")
    assert files.status_code == 404, "a declined command ran"


async def test_remember_skips_the_next_approval_of_that_kind_for_this_run_only(
    model: LoopbackModelServer, open_session: Any
) -> None:
    session = await open_session(approval=["bash", "editor"])
    model.add(
        say("One.", bash("echo one")),
        say("Two.", bash("echo two")),
        say("Look.", edit("view", "/home/user")),
        say("Write.", edit("create", "/home/user/n.txt", file_text="x")),
        say("Done."),
    )
    await session.send("count")
    first = await session.next("approval_required")
    assert (await session.answer(first["approval_id"], "approve", remember=True)).status_code == 200
    second = await session.next("approval_required", after=first["_id"])
    assert second["action"] == "editor", "the second bash command asked again"
    assert "two" in results(session)[1]["output"]
    assert len(results(session)) == 3  # the editor's view did not ask
    await session.answer(second["approval_id"], "approve")
    assert (await session.next("message_complete"))["stop_reason"] == "end_turn"

    model.add(say("Three.", bash("echo three")), say("Done."))
    mark = session.stream.events[-1][0]
    await session.send("again")
    third = await session.next("approval_required", after=mark)  # a new run asks again
    assert third["action"] == "bash"
    await session.answer(third["approval_id"], "approve")
    await session.next("message_complete", after=mark)


async def test_an_unanswered_approval_expires_and_ends_the_run(
    model: LoopbackModelServer, open_session: Any
) -> None:
    session = await open_session(approval="ask")
    model.add(say("Typing.", member("type", text="late"), member("screenshot")))
    requests = len(model.requests)
    await session.send("type late")
    asked = await session.next("approval_required")
    resolved = await session.next("approval_resolved", timeout=TIMEOUT + 20)
    assert resolved == {"_id": resolved["_id"], "approval_id": asked["approval_id"],
                        "decision": "expired"}  # fmt: skip
    complete = await session.next("message_complete")
    assert complete["stop_reason"] == "approval_expired"
    assert "APPROVAL_TIMEOUT_SECONDS" in complete["detail"]
    assert len(model.requests) == requests + 1, "the run asked the model again after expiry"
    assert [r["is_error"] for r in results(session)] == [True, True]
    late = await session.answer(asked["approval_id"], "approve")
    assert late.status_code == 409 and "expired" in late.text
    await wait_status(session.http, session.id, "active")


async def test_beta_computer_tool_asks_too(model: LoopbackModelServer, open_session: Any) -> None:
    session = await open_session(approval=["left_click"], model="claude-sonnet-4-6")
    model.add(
        say("Look.", computer("screenshot")),
        say("Click.", computer("left_click", coordinate=[10, 10])),
        say("Done."),
    )
    await session.send("click")
    asked = await session.next("approval_required")
    assert asked["name"] == "computer" and asked["action"] == "left_click"
    await session.answer(asked["approval_id"], "approve")
    assert (await session.next("message_complete"))["stop_reason"] == "end_turn"
    assert [r["is_error"] for r in results(session)] == [False, False]


async def test_three_declines_in_a_row_end_the_run_as_declined(
    model: LoopbackModelServer, open_session: Any
) -> None:
    session = await open_session(approval=["bash"])
    model.add(*[say("Try.", bash(f"echo {i}")) for i in range(3)])
    await session.send("insist")
    after = 0
    for _ in range(3):
        asked = await session.next("approval_required", after=after)
        after = asked["_id"]
        await session.answer(asked["approval_id"], "decline")
    complete = await session.next("message_complete")
    assert complete["stop_reason"] == "declined" and "3 actions" in complete["detail"]
    assert model.remaining == 0


async def test_cancel_while_an_approval_waits_closes_it(
    model: LoopbackModelServer, open_session: Any
) -> None:
    session = await open_session(approval=["key"])
    model.add(say("Pressing.", member("key", text="Return")))
    await session.send("press")
    asked = await session.next("approval_required")
    assert (await session.http.post(f"{session.url}/cancel")).json()["cancelled"] is True
    resolved = await session.next("approval_resolved")
    assert resolved["decision"] == "interrupted"
    assert (await session.next("message_complete"))["stop_reason"] == "cancelled"
    assert (await session.answer(asked["approval_id"], "approve")).status_code == 409


# --- pause, take control, hand back -------------------------------------------------------


async def test_taking_control_holds_the_agent_and_handing_back_shows_a_fresh_screen(
    model: LoopbackModelServer, open_session: Any
) -> None:
    session = await open_session(approval=["bash"])
    model.add(
        say("Two things.", bash("echo first"), member("type", text="never typed")),
        say("Looked again; done."),
    )
    await session.send("do two things")
    asked = await session.next("approval_required")  # the run is between two actions here
    taken = await session.http.post(f"{session.url}/pause", json={"take_control": True})
    assert taken.status_code == 200 and taken.json()["held_by"] == "person"
    requests = len(model.requests)
    await session.answer(asked["approval_id"], "approve")
    paused = await session.next("paused")
    assert paused["by"] == "person"
    state = (await session.http.get(session.url)).json()
    assert state["paused"] and state["held_by"] == "person" and state["processing"]
    # while the person holds the desktop: the approved command ran, the typing waits
    assert [r["output"] for r in results(session)] == ["first"]
    assert len(model.requests) == requests
    assert not any(t in ("resumed", "tool_use") for _, t, _ in session.events(paused["_id"]))

    back = await session.http.post(f"{session.url}/resume")
    assert back.status_code == 200 and back.json()["held_by"] == "agent"
    resumed = await session.next("resumed")
    assert resumed["by"] == "person" and resumed["image_url"]
    assert (await session.next("message_complete"))["stop_reason"] == "end_turn"
    # the typing planned before the hand-back was not run: the model decides again
    not_run = results(session)[1]
    assert not_run["is_error"] and "paused" in not_run["output"]
    assert len(results(session)) == 2
    last = model.requests[-1].messages[-1]["content"]
    assert any("A person took control" in str(b.get("text", "")) for b in last)
    assert last[-1]["type"] == "image", "no fresh screenshot after the hand-back"
    assert model.rejections == []


async def test_pause_through_the_api_before_a_run_holds_it_until_resume(
    model: LoopbackModelServer, open_session: Any
) -> None:
    session = await open_session()
    paused = await session.http.post(f"{session.url}/pause")
    assert paused.status_code == 200 and paused.json()["paused"]
    assert paused.json()["held_by"] == "agent"
    model.add(say("Hello."))
    requests = len(model.requests)
    await session.send("hello")
    held = await session.next("paused")
    assert held["by"] == "api"
    assert (await session.http.get(session.url)).json()["processing"]
    assert len(model.requests) == requests
    await session.http.post(f"{session.url}/resume")
    assert (await session.next("resumed"))["by"] == "api"
    assert (await session.next("message_complete"))["stop_reason"] == "end_turn"
    assert len(model.requests) == requests + 1


# --- asking the person --------------------------------------------------------------------


async def test_a_question_ends_the_run_and_the_reply_is_its_answer(
    model: LoopbackModelServer, open_session: Any
) -> None:
    session = await open_session()
    model.add(
        say("I need to know.", ToolUse("ask_person", {"question": "Which city?"}, id="toolu_q1")),
        say("Santiago it is."),
    )
    await session.send("weather please")
    question = await session.next("question")
    assert question == {"_id": question["_id"], "tool_use_id": "toolu_q1",
                        "question": "Which city?"}  # fmt: skip
    complete = await session.next("message_complete")
    assert complete["stop_reason"] == "question" and "Which city?" in complete["detail"]
    assert "ask_person" in model.requests[-1].tool_names

    await session.send("Santiago, Chile")
    assert (await session.next("message_complete", after=complete["_id"]))[
        "stop_reason"
    ] == "end_turn"
    answer = model.requests[-1].last_tool_results()
    assert [r["tool_use_id"] for r in answer] == ["toolu_q1"]
    assert model.requests[-1].last_tool_result_text() == "Santiago, Chile"
    assert model.rejections == []
    detail = (await session.http.get(session.url)).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant", "user", "assistant"]


# --- restart ------------------------------------------------------------------------------


async def test_a_pending_approval_ends_as_interrupted_across_a_restart(
    model: LoopbackModelServer, hitl_server: ServerProcess, http: httpx.AsyncClient
) -> None:
    created = await http.post("/api/v1/sessions", json={"approval": ["type"]})
    sid = created.json()["id"]
    session = Session(http, sid)
    model.add(say("Typing.", member("type", text="before restart")))
    await session.send("type")
    asked = await session.next("approval_required")
    await session.http.post(f"{session.url}/pause", json={"take_control": True})
    await asyncio.to_thread(hitl_server.stop, signal.SIGKILL)  # a crash: nothing cleans up
    await asyncio.wait_for(session.stream.ended.wait(), 15)
    last = session.stream.events[-1][0]
    await asyncio.to_thread(hitl_server.start)

    after = SseReader(http, sid, last_event_id=last).start()
    resolved = await after.until(is_type("approval_resolved"))
    assert resolved[2] == {"approval_id": asked["approval_id"], "decision": "interrupted"}
    complete = await after.until(is_type("message_complete"))
    assert complete[2]["stop_reason"] == "error"
    late = await session.answer(asked["approval_id"], "approve")
    assert late.status_code == 409 and "interrupted" in late.text
    detail = await wait_status(http, sid, "active")
    # the policy and who holds the desktop are session state: they survive the restart
    assert detail["approval"] == ["type"] and detail["held_by"] == "person"
    await after.close()
    assert (await http.delete(session.url)).status_code == 204
