"""Bodies of the person-in-the-loop routes: approval policy, pause / resume, approvals."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from computer_use.agent.tools.approvals import KINDS, parse_policy

Kind = Annotated[str, Field(max_length=32)]
ApprovalPolicy = Literal["auto", "ask"] | Annotated[list[Kind], Field(max_length=len(KINDS))]

APPROVAL_DESCRIPTION = (
    '"auto" (default: nothing waits), "ask" (every action that changes something waits for '
    "a person: typing, keys, clicks, drags, scrolls, mouse moves, bash commands, editor "
    "writes; never screenshots, zoom, cursor position or waits), or a list of those action "
    f"kinds: {', '.join(KINDS)}."
)


class RequestBody(BaseModel):
    """A request body: an unknown field is refused (422), never silently ignored."""

    model_config = ConfigDict(extra="forbid")


def check_policy(value: ApprovalPolicy | None) -> ApprovalPolicy | None:
    if value is not None:
        parse_policy(value)  # ValueError -> 422 naming the kinds
    return value


class PauseRequest(RequestBody):
    take_control: bool = Field(
        default=False,
        description="A person takes the desktop over (the console's Take control); the "
        "session then says `held_by: person`. Without it the run just pauses.",
    )


class ControlState(BaseModel):
    session_id: str
    approval: ApprovalPolicy
    paused: bool = Field(description="The agent may not act until POST .../resume.")
    held_by: Literal["agent", "person"] = Field(description="Who holds the desktop.")
    waiting: bool = Field(
        description="A run is stopped at a step boundary right now, waiting for resume."
    )
    pending_approval_id: str | None = Field(
        default=None, description="The approval the run waits for, if any."
    )


class ApprovalAnswer(RequestBody):
    decision: Literal["approve", "decline"]
    remember: bool = Field(
        default=False,
        description="With approve: the same kind of action runs without asking for the rest "
        "of this run.",
    )


class ApprovalAnswered(BaseModel):
    session_id: str
    approval_id: str
    decision: Literal["approved", "declined"]
    remember: bool
