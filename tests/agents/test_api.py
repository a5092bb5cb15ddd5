"""The classic API surface: termination, reply functions, summaries, chats in a row, sync calls."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import pytest

import moot.agents
from moot.agents import (
    AgentConfigError,
    AssistantAgent,
    ConversableAgent,
    EventLoopRunningError,
    HumanInputError,
    ScriptedInputProvider,
    Tool,
    ToolRegistrationError,
    UserProxyAgent,
    default_is_termination_msg,
    gather_usage_summary,
)
from moot.runtime import MootError

if TYPE_CHECKING:
    from moot.testing import ScriptedModelServer


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("TERMINATE", True),
        ("The result is 42. TERMINATE", True),
        ("Done.\nTERMINATE.", True),
        ("all good TERMINATE!  \n", True),
        ("TERMINATE the process first, then run it", False),
        ("NOTTERMINATE", False),
        ("terminate", False),
        ("", False),
    ],
)
def test_default_termination_is_a_trailing_terminate_word(content: str, expected: bool) -> None:
    assert default_is_termination_msg({"content": content}) is expected


def test_default_termination_ignores_messages_without_text() -> None:
    assert default_is_termination_msg({"content": None, "tool_calls": []}) is False


def test_classic_defaults() -> None:
    assistant = AssistantAgent("a", llm_config=False)
    user = UserProxyAgent("u")
    assert assistant.human_input_mode == "NEVER"
    assert "TERMINATE" in assistant.system_message
    assert assistant.max_consecutive_auto_reply() == 100
    assert user.human_input_mode == "ALWAYS"
    assert user.llm_config is False
    assert user.code_execution_config == {}
    assert user.description
    assert assistant.description


def test_bad_arguments_are_typed_errors() -> None:
    with pytest.raises(AgentConfigError, match="human_input_mode"):
        ConversableAgent("x", human_input_mode="SOMETIMES")  # type: ignore[arg-type]
    with pytest.raises(AgentConfigError, match="unknown key"):
        UserProxyAgent("x", code_execution_config={"workdir": "typo"})
    with pytest.raises(MootError):
        AssistantAgent("x", llm_config={"config_list": []})


def test_the_public_names_are_sorted_and_complete() -> None:
    names = moot.agents.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(moot.agents, name), name
    for name in ("ChatResult", "ConversableAgent", "register_function", "QueueInputProvider"):
        assert name in names


async def test_sync_initiate_chat_inside_a_loop_says_to_await_the_async_twin() -> None:
    user = UserProxyAgent("u", code_execution_config=False)
    other = ConversableAgent("o", llm_config=False)
    with pytest.raises(EventLoopRunningError, match=r"await a_initiate_chat\(\.\.\.\)"):
        user.initiate_chat(other, message="hi")


def test_sync_initiate_chat_works_from_a_plain_script(server: ScriptedModelServer) -> None:
    server.push("Hello! TERMINATE")
    assistant = AssistantAgent("a", llm_config={"config_list": server.config_list()})
    user = UserProxyAgent("u", human_input_mode="NEVER", code_execution_config=False)
    result = user.initiate_chat(assistant, message="hi", silent=True)
    assert result.summary == "Hello!"


async def test_human_input_always_asks_every_turn(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("What next?", "Ok. TERMINATE")
    humans = ScriptedInputProvider(["do it", ""])  # an empty answer at TERMINATE ends the chat
    assistant = AssistantAgent("a", llm_config=llm_config)
    user = UserProxyAgent("u", code_execution_config=False, input_provider=humans)

    result = await user.a_initiate_chat(assistant, message="start", silent=True)

    assert [m["content"] for m in result.chat_history] == [
        "start",
        "What next?",
        "do it",
        "Ok. TERMINATE",
    ]
    assert result.human_input == ["do it", ""]
    assert [r.sender for r in humans.requests] == ["a", "a"]


async def test_an_input_provider_that_runs_out_raises_its_error(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("What next?")
    assistant = AssistantAgent("a", llm_config=llm_config)
    user = UserProxyAgent(
        "u", code_execution_config=False, input_provider=ScriptedInputProvider([])
    )
    with pytest.raises(HumanInputError, match="no answer left"):
        await user.a_initiate_chat(assistant, message="start", silent=True)


async def test_register_reply_runs_before_the_builtins() -> None:
    seen: list[str] = []

    def shout(
        recipient: ConversableAgent, messages: list[dict[str, Any]], sender: Any, config: Any
    ) -> tuple[bool, str]:
        seen.append(messages[-1]["content"])
        return True, f"{config}: {messages[-1]['content'].upper()}"

    async def stop(
        recipient: ConversableAgent, messages: list[dict[str, Any]], sender: Any, config: Any
    ) -> tuple[bool, None]:
        return True, None

    echo = ConversableAgent("echo", llm_config=False, human_input_mode="NEVER")
    echo.register_reply([ConversableAgent, None], shout, config="echo")
    starter = ConversableAgent("starter", llm_config=False, human_input_mode="NEVER")
    starter.register_reply("echo", stop)

    result = await starter.a_initiate_chat(echo, message="hi there", silent=True)

    assert [m["content"] for m in result.chat_history] == ["hi there", "echo: HI THERE"]
    assert seen == ["hi there"]
    reply = await echo.a_generate_reply([{"role": "user", "content": "direct"}])
    assert reply == "echo: DIRECT"


async def test_reflection_summary_and_usage(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("42 TERMINATE", "The answer was 42.")
    assistant = AssistantAgent("a", llm_config=llm_config)
    user = UserProxyAgent("u", human_input_mode="NEVER", code_execution_config=False)

    result = await user.a_initiate_chat(
        assistant, message="q", silent=True, summary_method="reflection_with_llm"
    )

    assert result.summary == "The answer was 42."
    assert result.cost.calls == 2  # the reflection is a model call of this chat
    assert "Write the outcome" in server.requests[1].last_text
    totals = gather_usage_summary([assistant, user])
    assert totals["usage_including_cached_inference"]["total_cost"] == pytest.approx(
        result.cost.total_cost
    )
    assert totals["usage_including_cached_inference"]["gpt-4o"]["total_tokens"] == (
        result.cost.total_tokens
    )


async def test_initiate_chats_carries_summaries_over(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Paris. TERMINATE", "About 2.1 million. TERMINATE")
    geo = AssistantAgent("geo", llm_config=llm_config)
    stats = AssistantAgent("stats", llm_config=llm_config)
    user = UserProxyAgent("u", human_input_mode="NEVER", code_execution_config=False)

    results = await user.a_initiate_chats(
        [
            {"recipient": geo, "message": "Capital of France?", "silent": True},
            {"recipient": stats, "message": "How many people live there?", "silent": True},
        ]
    )

    assert [r.summary for r in results] == ["Paris.", "About 2.1 million."]
    assert server.requests[1].messages[1]["content"] == (
        "How many people live there?\nContext: \nParis."
    )


def test_tool_schema_comes_from_type_hints() -> None:
    def search(query: Annotated[str, "what to look for"], limit: int = 5) -> list[str]:
        """Search the notes."""
        return [query] * limit

    tool = Tool.from_function(search)
    schema = tool.schema()["function"]
    assert schema["name"] == "search"
    assert schema["description"] == "Search the notes."
    assert schema["parameters"]["properties"] == {
        "query": {"type": "string", "description": "what to look for"},
        "limit": {"type": "integer", "default": 5},
    }
    assert schema["parameters"]["required"] == ["query"]
    assert asyncio.run(tool.call('{"query": "x", "limit": 2}')) == '["x", "x"]'


def test_decorators_register_for_llm_and_for_execution(llm_config: dict[str, Any]) -> None:
    assistant = AssistantAgent("a", llm_config=llm_config)
    user = UserProxyAgent("u", code_execution_config=False)

    @user.register_for_execution()
    @assistant.register_for_llm(description="Add two numbers.")
    def add(a: int, b: int) -> int:
        return a + b

    assert [t.name for t in assistant.tools] == ["add"]
    assert user.can_execute_function("add")
    assert add(1, 2) == 3
    with pytest.raises(ToolRegistrationError, match="no llm_config"):
        user.register_for_llm(description="x")(add)


async def test_terminate_mode_asks_a_human_when_the_auto_replies_run_out(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.default = "More?"
    humans = ScriptedInputProvider(["keep going", "exit"])
    assistant = AssistantAgent("a", llm_config=llm_config)
    user = UserProxyAgent(
        "u",
        human_input_mode="TERMINATE",
        max_consecutive_auto_reply=1,
        code_execution_config=False,
        default_auto_reply="auto",
        input_provider=humans,
    )

    result = await user.a_initiate_chat(assistant, message="go", silent=True)

    contents = [m["content"] for m in result.chat_history]
    assert contents == ["go", "More?", "auto", "More?", "keep going", "More?", "auto", "More?"]
    assert result.human_input == ["keep going", "exit"]


async def test_a_callable_message_gets_the_agents_and_the_context(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Done. TERMINATE")
    assistant = AssistantAgent("a", llm_config=llm_config)
    user = UserProxyAgent("u", human_input_mode="NEVER", code_execution_config=False)

    def opening(sender: ConversableAgent, recipient: ConversableAgent, context: Any) -> str:
        return f"{sender.name} asks {recipient.name} about {context['topic']}"

    result = await user.a_initiate_chat(assistant, message=opening, silent=True, topic="tides")

    assert result.chat_history[0]["content"] == "u asks a about tides"


async def test_stream_true_streams_and_shows_tokens_unless_silent(
    server: ScriptedModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.push("Streamed words arrive. TERMINATE", "Quiet. TERMINATE")
    config = {"config_list": server.config_list(), "stream": True}
    assistant = AssistantAgent("a", llm_config=config)
    user = UserProxyAgent("u", human_input_mode="NEVER", code_execution_config=False)

    loud = await user.a_initiate_chat(assistant, message="talk")
    shown = capsys.readouterr().out
    quiet = await user.a_initiate_chat(assistant, message="hush", silent=True)

    assert loud.summary == "Streamed words arrive."
    assert quiet.summary == "Quiet."
    assert server.requests[0].stream
    assert server.requests[0].body.get("stream") is True
    assert "Streamed words arrive. TERMINATE" in shown
    assert "u (to a):" in shown
    assert capsys.readouterr().out == ""
