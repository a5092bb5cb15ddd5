"""The reply path's per-chat caches behave as a rebuild on every turn would.

The model's view of a chat is extended turn by turn and the reply functions are matched once
per sender; these tests change what those caches depend on in the middle of a chat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moot.agents import ConversableAgent
from moot.models import ModelClient, ModelResponse, Usage

if TYPE_CHECKING:
    from moot.models import ModelRequest


class Recording(ModelClient):
    """Answers "turn <n>" and keeps a copy of every request's messages."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []

    async def create(self, request: ModelRequest) -> ModelResponse:
        self.requests.append([dict(m) for m in request.messages])
        return ModelResponse(content=f"turn {len(self.requests)}", usage=Usage(), model="m")

    async def aclose(self) -> None:
        return None


async def test_each_model_call_sees_the_whole_thread_and_the_current_system_message() -> None:
    model = Recording()
    agent = ConversableAgent(
        "agent", system_message="first", human_input_mode="NEVER", model_client=model
    )
    calls: list[int] = []

    def renamer(
        recipient: ConversableAgent, messages: list[dict[str, Any]], sender: Any, config: Any
    ) -> tuple[bool, None]:
        calls.append(len(messages))
        if len(calls) == 2:
            recipient.update_system_message("second")
        return False, None

    agent.register_reply(ConversableAgent, renamer)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
    user.register_reply(ConversableAgent, lambda *args: (True, "more"))

    await user.a_initiate_chat(agent, message="hello", max_turns=3, silent=True)

    assert len(model.requests) == 3
    for request in model.requests:
        assert request[0]["role"] == "system"
    assert [r[0]["content"] for r in model.requests] == ["first", "second", "second"]
    third = model.requests[2]
    assert [(m["role"], m["content"], m.get("name")) for m in third[1:]] == [
        ("user", "hello", "user"),
        ("assistant", "turn 1", "agent"),
        ("user", "more", "user"),
        ("assistant", "turn 2", "agent"),
        ("user", "more", "user"),
    ]


async def test_a_reply_function_registered_mid_chat_runs_from_the_next_turn() -> None:
    model = Recording()
    agent = ConversableAgent("agent", human_input_mode="NEVER", model_client=model)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")

    def canned(
        recipient: ConversableAgent, messages: list[dict[str, Any]], sender: Any, config: Any
    ) -> tuple[bool, str]:
        return True, "canned"

    def reply(
        recipient: ConversableAgent, messages: list[dict[str, Any]], sender: Any, config: Any
    ) -> tuple[bool, str]:
        if len(messages) == 4:  # after the agent's second answer
            agent.register_reply("user", canned)
        return True, "more"

    user.register_reply(ConversableAgent, reply)
    result = await user.a_initiate_chat(agent, message="hello", max_turns=3, silent=True)

    assert [m["content"] for m in result.chat_history if m["name"] == "agent"] == [
        "turn 1",
        "turn 2",
        "canned",
    ]


async def test_a_callable_trigger_is_asked_on_every_turn() -> None:
    asked: list[str] = []

    def trigger(sender: Any) -> bool:
        asked.append(sender.name)
        return len(asked) % 2 == 1

    agent = ConversableAgent("agent", llm_config=False, human_input_mode="NEVER")
    agent.register_reply(trigger, lambda *args: (True, "odd"))
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
    user.register_reply(ConversableAgent, lambda *args: (True, "again"))

    result = await user.a_initiate_chat(agent, message="hi", max_turns=4, silent=True)

    assert asked == ["user"] * 4
    assert [m["content"] for m in result.chat_history if m["name"] == "agent"] == [
        "odd",
        "",
        "odd",
        "",
    ]
