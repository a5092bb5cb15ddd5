"""`agent.run()` / `a_run()` (AG2's one-call chat): talk to an agent, get a `RunResponse`.

Without a recipient, a user agent is made for the call (asking the human only with
`user_input=True`) and, with `msg_to="agent"`, sends the message to the agent. The chat runs
quietly; `process()` shows it afterwards on the default `IOStream`.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Literal

from ._chat import RunResponse
from ._errors import AgentConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from moot.runtime import Runtime

    from ._chat import ChatResult
    from ._conversable import ConversableAgent


def _tool_parts(tool: Any) -> tuple[Callable[..., Any], str | None, str]:
    function = getattr(tool, "function", None) or getattr(tool, "func", None) or tool
    if not callable(function):
        raise AgentConfigError(f"run(tools=...) takes functions or Tools; got {tool!r}")
    name = getattr(tool, "name", None) if function is not tool else None
    description = getattr(tool, "description", None) or inspect.getdoc(function) or ""
    if not description:
        raise AgentConfigError(f"the tool {function!r} needs a description (a docstring)")
    return function, name, description


async def run_agent(
    agent: ConversableAgent,
    recipient: ConversableAgent | None,
    *,
    message: str | Mapping[str, Any] | None,
    clear_history: bool,
    max_turns: int | None,
    summary_method: Any,
    summary_args: Mapping[str, Any] | None,
    tools: Iterable[Any] | None,
    user_input: bool,
    msg_to: Literal["agent", "user"],
    runtime: Runtime | None,
) -> RunResponse:
    """Run one chat for `run()` and gather its response."""
    from ._conversable import ConversableAgent, register_function

    if recipient is None:
        user = ConversableAgent(
            "user", llm_config=False, human_input_mode="ALWAYS" if user_input else "NEVER"
        )
        if user_input:
            user.input_provider = agent.input_provider
        for tool in tools or ():
            function, name, description = _tool_parts(tool)
            register_function(
                function, caller=agent, executor=user, name=name, description=description
            )
        sender, receiver = (user, agent) if msg_to == "agent" else (agent, user)
    else:
        sender, receiver = agent, recipient
    result: ChatResult = await sender.a_initiate_chat(
        receiver,
        message,
        max_turns=max_turns,
        summary_method=summary_method,
        summary_args=summary_args,
        clear_history=clear_history,
        silent=True,
        runtime=runtime,
    )
    history = result.chat_history
    return RunResponse(
        messages=history,
        summary=result.summary,
        cost=result.cost,
        last_speaker=str(history[-1].get("name")) if history else None,
        chat_id=result.chat_id,
    )
