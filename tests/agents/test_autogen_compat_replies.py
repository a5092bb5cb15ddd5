"""Hooks, the built-in reply functions under AutoGen's public names, generate_reply's options,
and chat summaries as AutoGen makes them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import AgentConfigError, ConversableAgent, EventLoopRunningError, NoMessagesError

if TYPE_CHECKING:
    from moot.testing import ScriptedModelServer


def _agent(name: str, reply: str = "", limit: int = 10, **options: Any) -> ConversableAgent:
    options.setdefault("human_input_mode", "NEVER")
    options.setdefault("llm_config", False)
    return ConversableAgent(
        name, default_auto_reply=reply, max_consecutive_auto_reply=limit, **options
    )


# -- hooks


def test_process_message_before_send_sees_every_sent_message_and_may_change_it() -> None:
    seen: list[tuple[str, Any, str, bool]] = []

    def shout(sender: ConversableAgent, message: Any, recipient: Any, silent: bool) -> Any:
        seen.append((sender.name, message, recipient.name, silent))
        return message.upper() if isinstance(message, str) else message

    alice, bob = _agent("alice", "fine", limit=1), _agent("bob", "and you?", limit=1)
    alice.register_hook("process_message_before_send", shout)

    alice.initiate_chat(bob, message="hello", silent=True)
    alice.send("quiet", bob, silent=True)

    assert seen[:2] == [("alice", "hello", "bob", True), ("alice", "fine", "bob", True)]
    assert [m["content"] for m in bob.chat_messages[alice]][:3] == ["HELLO", "and you?", "FINE"]


def test_a_send_hook_without_a_sender_parameter_is_called_without_it() -> None:
    calls: list[Any] = []

    def legacy(message: Any, recipient: Any, silent: bool) -> Any:
        calls.append(message)
        return message

    alice, bob = _agent("alice"), _agent("bob")
    alice.register_hook("process_message_before_send", legacy)
    alice.send("hello", bob)
    assert calls == ["hello"]


def test_reply_hooks_shape_what_the_model_sees_not_the_history(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Noted. TERMINATE")
    assistant = ConversableAgent("assistant", llm_config=llm_config, human_input_mode="NEVER")
    states: list[int] = []
    assistant.register_hook(
        "update_agent_state", lambda agent, messages: states.append(len(messages))
    )
    assistant.register_hook("process_last_received_message", lambda content: content + " (urgent)")
    assistant.register_hook(
        "process_all_messages_before_reply",
        lambda messages: [{"role": "user", "content": "preamble"}, *messages],
    )
    user = _agent("user", limit=0)

    user.initiate_chat(assistant, message="file the report", silent=True)

    sent = [m["content"] for m in server.requests[0].messages]
    assert sent[1:] == ["preamble", "file the report (urgent)"]
    assert states == [1]
    assert assistant.chat_messages[user][0]["content"] == "file the report"


def test_register_hook_refuses_unknown_points_and_duplicates() -> None:
    agent = _agent("a")

    def hook(content: Any) -> Any:
        return content

    with pytest.raises(AgentConfigError, match="hookable"):
        agent.register_hook("process_everything", hook)
    agent.register_hook("process_last_received_message", hook)
    with pytest.raises(AgentConfigError, match="already"):
        agent.register_hook("process_last_received_message", hook)
    assert agent.hook_lists["process_last_received_message"] == [hook]


# -- the built-in reply functions and generate_reply


def test_a_registered_generate_oai_reply_asks_the_model(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("From the model.")
    agent = ConversableAgent(
        "agent", llm_config=llm_config, human_input_mode="NEVER", default_auto_reply="default"
    )
    agent.register_reply([ConversableAgent, None], lambda *args: (True, "first"))
    agent.register_reply([ConversableAgent, None], ConversableAgent.generate_oai_reply)

    reply = agent.generate_reply([{"role": "user", "content": "hi"}])

    assert reply == "From the model."
    assert len(server.requests) == 1


def test_generate_reply_takes_a_single_message_and_excludes_built_ins(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Model says hi.")
    agent = ConversableAgent(
        "agent", llm_config=llm_config, human_input_mode="NEVER", default_auto_reply="default"
    )

    assert agent.generate_reply({"role": "user", "content": "hi"}) == "Model says hi."
    assert (
        agent.generate_reply(
            [{"role": "user", "content": "hi"}], exclude=[ConversableAgent.generate_oai_reply]
        )
        == "default"
    )
    assert len(server.requests) == 1


def test_generate_reply_from_a_senders_thread() -> None:
    alice, bob = _agent("alice", limit=0), _agent("bob", "bob's answer")
    alice.send("question", bob, silent=True)
    assert bob.generate_reply(sender=alice) == "bob's answer"
    assert len(bob.chat_messages[alice]) == 1  # nothing recorded


def test_generate_reply_without_messages_or_sender_is_refused() -> None:
    agent = _agent("a")
    with pytest.raises(NoMessagesError) as caught:
        agent.generate_reply()
    assert isinstance(caught.value, AssertionError)
    assert isinstance(caught.value, ValueError)


async def test_a_generate_reply_is_the_async_form() -> None:
    agent = _agent("a", "async answer")
    assert await agent.a_generate_reply([{"role": "user", "content": "x"}]) == "async answer"
    with pytest.raises(NoMessagesError):
        await agent.a_generate_reply()


def test_check_termination_and_human_reply_counts_per_sender() -> None:
    agent, peer = _agent("a", limit=1), _agent("b")
    hello = [{"role": "user", "content": "hello"}]

    assert agent.check_termination_and_human_reply(hello, peer) == (False, None)
    assert agent.check_termination_and_human_reply(hello, peer) == (True, None)  # limit reached
    assert agent.check_termination_and_human_reply(
        [{"role": "user", "content": "done TERMINATE"}], peer
    ) == (True, None)


def test_tool_calls_reply_runs_the_calls() -> None:
    agent = ConversableAgent("a", llm_config=False, function_map={"echo": lambda text: text})
    message = {
        "role": "user",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "echo", "arguments": '{"text": "x"}'},
            }
        ],
    }
    final, reply = agent.generate_tool_calls_reply([message])
    assert final
    assert reply is not None
    assert reply["tool_responses"] == [{"tool_call_id": "c1", "role": "tool", "content": "x"}]
    assert agent.generate_tool_calls_reply([{"role": "user", "content": "no"}]) == (False, None)


async def test_async_reply_function_runs_in_a_sync_chat_too() -> None:
    """A moot difference: AutoGen refuses async reply functions in a sync chat; moot runs them."""
    agent, peer = _agent("a", limit=0), _agent("b", limit=0)

    async def answer(recipient: Any, messages: Any, sender: Any, config: Any) -> Any:
        return True, "async reply"

    agent.register_reply(peer, answer)
    await peer.a_initiate_chat(agent, message="hi", silent=True)
    assert peer.last_message(agent)["content"] == "async reply"  # type: ignore[index]


# -- summaries


def test_a_summary_function_returning_a_message_gives_its_content() -> None:
    user, assistant = _agent("user", "Hello.", limit=1), _agent("assistant", "A test.")
    received: list[dict[str, Any]] = []

    def as_message(sender: Any, recipient: Any, summary_args: dict[str, Any]) -> Any:
        received.append(summary_args)
        return {"content": "This is a summary."}

    result = user.initiate_chat(
        assistant,
        message="Hello?",
        max_turns=1,
        summary_method=as_message,
        summary_args={"summary_prompt": "Sum up."},
        silent=True,
    )

    assert result.summary == "This is a summary."
    assert received == [{"summary_prompt": "Sum up."}]
    nothing = user.initiate_chat(
        assistant, message="Hello?", max_turns=1, summary_method=lambda *a: None, silent=True
    )
    assert nothing.summary == ""


def test_reflection_with_llm_sends_the_summary_prompt(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Paris. TERMINATE", "Asked for a capital.")
    assistant = ConversableAgent("assistant", llm_config=llm_config, human_input_mode="NEVER")
    user = _agent("user", limit=0)

    result = user.initiate_chat(
        assistant,
        message="Capital of France?",
        summary_method="reflection_with_llm",
        summary_args={"summary_prompt": "Summarize in five words.", "summary_role": "user"},
        silent=True,
    )

    assert result.summary == "Asked for a capital."
    last = server.requests[1].messages[-1]
    assert last == {"role": "user", "content": "Summarize in five words."}


def test_an_unknown_summary_method_is_refused_before_the_chat_starts() -> None:
    user, assistant = _agent("user"), _agent("assistant", "never asked")
    with pytest.raises(AgentConfigError, match="summary_method") as caught:
        user.initiate_chat(assistant, message="hi", summary_method="bogus", silent=True)
    assert isinstance(caught.value, ValueError)
    assert not user.chat_messages.get(assistant)


class _Shouting(ConversableAgent):
    """A subclass that replies through its own sync generate_reply, calling the base one."""

    def generate_reply(
        self, messages: Any = None, sender: Any = None, exclude: Any = (), **kwargs: Any
    ) -> Any:
        reply = super().generate_reply(messages, sender, exclude, **kwargs)
        return reply.upper() if isinstance(reply, str) else reply


class _Counting(ConversableAgent):
    """A subclass that replies through its own async a_generate_reply."""

    async def a_generate_reply(
        self, messages: Any = None, sender: Any = None, exclude: Any = (), **kwargs: Any
    ) -> Any:
        reply = await super().a_generate_reply(messages, sender, exclude, **kwargs)
        return None if reply is None else f"{reply} ({len(messages or [])} seen)"


def test_a_subclass_generate_reply_is_used_in_chats(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("quiet words. TERMINATE")
    shouter = _Shouting("shouter", llm_config=llm_config, human_input_mode="NEVER")
    user = _agent("user", limit=0)

    result = user.initiate_chat(shouter, message="speak", silent=True)

    assert [m["content"] for m in result.chat_history] == ["speak", "QUIET WORDS. TERMINATE"]


async def test_a_subclass_a_generate_reply_is_used_and_keeps_the_count() -> None:
    counter = _Counting(
        "counter",
        llm_config=False,
        human_input_mode="NEVER",
        default_auto_reply="ok",
        max_consecutive_auto_reply=2,
    )
    user = _agent("user", "go on", limit=5)

    result = await user.a_initiate_chat(counter, message="start", silent=True)

    assert [m["content"] for m in result.chat_history] == [
        "start",
        "ok (1 seen)",
        "go on",
        "ok (3 seen)",
        "go on",
    ]
    assert counter._consecutive_auto_reply_counter[user] == 0  # stopped at the limit, reset


def test_generate_oai_reply_called_directly(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Direct answer.")
    agent = ConversableAgent("agent", llm_config=llm_config, system_message="Be brief.")

    assert agent.generate_oai_reply([{"role": "user", "content": "hi"}]) == (True, "Direct answer.")
    assert server.requests[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert _agent("plain").generate_oai_reply([{"role": "user", "content": "hi"}]) == (False, None)


async def test_the_async_built_ins_called_directly(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Async answer.")
    agent = ConversableAgent("agent", llm_config=llm_config, human_input_mode="NEVER")
    hello = [{"role": "user", "content": "hello"}]

    assert await agent.a_generate_oai_reply(hello) == (True, "Async answer.")
    assert await agent.a_check_termination_and_human_reply(hello) == (False, None)
    assert await agent.a_generate_code_execution_reply(hello) == (False, None)
    with pytest.raises(EventLoopRunningError):
        agent.generate_oai_reply(hello)
