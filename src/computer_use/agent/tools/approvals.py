"""Who approves a computer action before it runs: the seam for human approvals.

The SDK's toolset driver asks its `confirm` hook before every member call it is about to run
(and requires one while `type`, `key` and `hold_key` are enabled, because keyboard input goes to
whichever window has focus). Each session has exactly one `ActionApprover`, owned by its
SessionTools; today it approves everything. Asking a person plugs in here, by replacing
`decide`: return True to run the call; False answers the model with the SDK's refusal
("The user did not grant permission ...").
"""

from __future__ import annotations

from anthropic.tools.computer import BetaComputerConfirmContext


class ActionApprover:
    async def __call__(self, context: BetaComputerConfirmContext) -> bool:
        return await self.decide(context)

    async def decide(self, context: BetaComputerConfirmContext) -> bool:
        """Approve by default (no person is asked yet)."""
        return True
