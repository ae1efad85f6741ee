"""Approvals and questions through MCP: the executing call reports what waits for a person,
answer_approval answers it, and a question is answered with the next execute_task."""

from __future__ import annotations

from collections.abc import Callable

from computer_use.loopback import member, say
from computer_use.loopback.script import ToolUse
from tests.helpers import ServerProcess
from tests.mcp_server.conftest import Model, mcp_client, text_of
from tests.mcp_server.test_tools import create

KEY = "sk-ant-mcp-approvals"


async def test_execute_task_reports_the_approval_and_answer_approval_lets_it_run(
    app_server: ServerProcess, model: Model, created: Callable[[str], None]
) -> None:
    task = model.scripted.script(
        "type a greeting",
        say("Typing.", member("type", text="hello there")),
        say("I typed it."),
    )
    async with mcp_client(app_server, key=KEY) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["answer_approval"].output_schema is not None
        refused = await client.call_tool("create_session", {"approval": ["typing"]})
        assert refused.is_error and "left_click" in text_of(refused)

        session = await create(client, created, approval=["type"])
        sid = session["session_id"]
        waiting = await client.call_tool("execute_task", {"session_id": sid, "task": task})
        assert not waiting.is_error, text_of(waiting)
        result = waiting.structured_content
        assert result is not None and result["status"] == "waiting_for_approval"
        assert result["done"] is False
        approval = result["approval"]
        assert approval["action"] == "type" and approval["input"] == {"text": "hello there"}
        assert "answer_approval" in result["next_step"] and approval["approval_id"] in text_of(
            waiting
        )

        # wait_for_task from anywhere says the same, at once
        again = await client.call_tool("wait_for_task", {"session_id": sid})
        assert again.structured_content is not None
        assert again.structured_content["approval"] == approval

        answered = await client.call_tool(
            "answer_approval",
            {"session_id": sid, "approval_id": approval["approval_id"], "decision": "approve"},
        )
        assert not answered.is_error, text_of(answered)
        done = answered.structured_content
        assert done is not None and done["status"] == "completed", done
        assert done["answer"] == "I typed it." and done["approval"] is None
        assert model.requests_for(task)[-1].last_tool_result_text() == "Typed."

        twice = await client.call_tool(
            "answer_approval",
            {"session_id": sid, "approval_id": approval["approval_id"], "decision": "decline"},
        )
        assert twice.is_error and "already approved" in text_of(twice)


async def test_a_declined_action_and_a_question_through_mcp(
    app_server: ServerProcess, model: Model, created: Callable[[str], None]
) -> None:
    task = model.scripted.script(
        "clear the screen",
        say("Pressing Escape.", member("key", text="Escape")),
        say("Which one?", ToolUse("ask_person", {"question": "Which window?"})),
        say("Closing the second one."),
    )
    async with mcp_client(app_server, key=KEY) as client:
        session = await create(client, created, approval="ask")
        sid = session["session_id"]
        waiting = await client.call_tool("execute_task", {"session_id": sid, "task": task})
        approval = (waiting.structured_content or {})["approval"]
        asked = await client.call_tool(
            "answer_approval",
            {"session_id": sid, "approval_id": approval["approval_id"], "decision": "decline"},
        )
        result = asked.structured_content
        assert result is not None and result["status"] == "waiting_for_answer", result
        assert result["question"] == "Which window?" and "execute_task" in text_of(asked)
        assert "The person declined" in model.requests_for(task)[1].last_tool_result_text()

        replied = await client.call_tool(
            "execute_task", {"session_id": sid, "task": "The second one"}
        )
        done = replied.structured_content
        assert done is not None and done["status"] == "completed", done
        assert done["answer"] == "Closing the second one."
        assert model.requests_for(task)[-1].last_tool_result_text() == "The second one"


async def test_a_session_budget_through_mcp_stops_the_task(
    app_server: ServerProcess, model: Model, created: Callable[[str], None]
) -> None:
    task = model.scripted.script(
        "look twice",
        say("Looking.", member("screenshot")),
        say("Looking again.", member("screenshot")),
        say("Done."),
    )
    async with mcp_client(app_server, key=KEY) as client:
        refused = await client.call_tool("create_session", {"budget": {"max_steps": 0}})
        assert refused.is_error and "max_steps" in text_of(refused)

        session = await create(client, created, budget={"max_steps": 1})
        sid = session["session_id"]
        stopped = await client.call_tool("execute_task", {"session_id": sid, "task": task})
        result = stopped.structured_content
        assert result is not None and result["status"] == "stopped", result
        assert "max_steps" in text_of(stopped)
        assert len(model.requests_for(task)) == 1  # held to one model request
