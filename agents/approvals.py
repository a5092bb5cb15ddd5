"""Approvals: a human (or a rule) says yes before an agent runs code or calls tools.

Public as `moot.agents.approvals` (moot.agents' own namespace is full):
`from moot.agents.approvals import ApprovalRequest, ApprovalDecision`.

`approve_code=` and `approve_tools=` on the executing agent take "never" (run without asking, the
default), "always" (ask the agent's input provider every time) or a callable that decides.
A denial is reported to the model as the run's result, and nothing runs.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._errors import AgentConfigError

ApprovalKind = Literal["code", "tools"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRequest:
    """What waits for approval: code text or tool calls (as JSON), by which agent in which chat."""

    kind: ApprovalKind
    agent: str
    content: str
    chat_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalDecision:
    """A yes or no, with an optional reason the model is told on a no."""

    approved: bool
    reason: str = ""


ApprovalRule = Callable[
    [ApprovalRequest], bool | ApprovalDecision | Awaitable[bool | ApprovalDecision]
]
ApprovalPolicy = Literal["always", "never"] | ApprovalRule


def check_policy(policy: Any, name: str) -> ApprovalPolicy:
    """Raises: AgentConfigError: not "always", "never" or a callable."""
    if policy in ("always", "never") or callable(policy):
        return policy  # type: ignore[no-any-return]
    raise AgentConfigError(f"{name} must be 'always', 'never' or a callable; got {policy!r}")


def tool_calls_text(calls: Sequence[Any]) -> str:
    """Tool calls as the JSON a human reads: name and arguments of each."""
    shown = []
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            shown.append({"name": function.get("name"), "arguments": function.get("arguments")})
    return json.dumps(shown)


async def decide(
    policy: ApprovalPolicy,
    request: ApprovalRequest,
    ask: Callable[[ApprovalRequest], Awaitable[ApprovalDecision]],
) -> ApprovalDecision:
    """Apply `policy` to `request`; "always" asks through `ask` (the input provider)."""
    if policy == "never":
        return ApprovalDecision(approved=True)
    if policy == "always":
        return await ask(request)
    assert callable(policy)
    verdict = policy(request)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    if isinstance(verdict, ApprovalDecision):
        return verdict
    return ApprovalDecision(approved=bool(verdict))


def denied_code(decision: ApprovalDecision) -> str:
    """The result a model sees for code a human did not approve."""
    why = f": {decision.reason}" if decision.reason else ""
    return (
        f"exitcode: 1 (execution denied)\nCode output: the code was not run; approval denied{why}"
    )


def denied_tool(decision: ApprovalDecision) -> str:
    """The result a model sees for a tool call a human did not approve."""
    why = f": {decision.reason}" if decision.reason else ""
    return f"Error: the tool call was not run; approval denied{why}"
