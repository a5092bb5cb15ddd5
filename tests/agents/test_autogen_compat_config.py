"""AutoGen's construction-time contract: llm_config checked when the agent is built, the
auto-reply limit as a method, the counter kept across sends, and refused names and triggers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from moot.agents import (
    Agent,
    AgentConfigError,
    ConfigValueTypeError,
    ConversableAgent,
    UserProxyAgent,
)

if TYPE_CHECKING:
    from moot.testing import ScriptedModelServer


def _cfg(agent: ConversableAgent) -> dict[str, Any]:
    """The agent's llm_config dict (it has a model)."""
    config = agent.llm_config
    assert config is not False
    return config


def _quiet(name: str, limit: int, **options: Any) -> ConversableAgent:
    return ConversableAgent(
        name,
        max_consecutive_auto_reply=limit,
        llm_config=False,
        human_input_mode="NEVER",
        **options,
    )


# -- bug 1: llm_config is checked when the agent is built


def test_a_sync_http_client_is_refused_at_construction(server: ScriptedModelServer) -> None:
    entry = {**server.config_list()[0], "http_client": httpx.Client()}
    with pytest.raises(ConfigValueTypeError, match="http_client") as caught:
        ConversableAgent("agent", llm_config={"config_list": [entry]})
    assert isinstance(caught.value, AgentConfigError)
    assert isinstance(caught.value, TypeError)  # what AutoGen code catches
    assert isinstance(caught.value, ValueError)


async def test_an_async_http_client_is_honoured(server: ScriptedModelServer) -> None:
    server.push("Hi. TERMINATE")
    seen: list[str] = []

    async def count(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [count]}) as http:
        entry = {**server.config_list()[0], "http_client": http}
        assistant = ConversableAgent(
            "assistant", llm_config={"config_list": [entry]}, human_input_mode="NEVER"
        )
        user = _quiet("user", 0)
        result = await user.a_initiate_chat(assistant, message="hello", silent=True)

    assert result.summary == "Hi."
    assert seen == ["/v1/chat/completions"]


def test_different_http_clients_in_one_config_are_refused(server: ScriptedModelServer) -> None:
    first = {**server.config_list()[0], "http_client": httpx.AsyncClient()}
    second = {**server.config_list()[0], "http_client": httpx.AsyncClient()}
    with pytest.raises(ConfigValueTypeError, match="different http_client"):
        ConversableAgent("agent", llm_config={"config_list": [first, second]})


def test_an_unknown_key_that_is_not_json_is_refused(server: ScriptedModelServer) -> None:
    with pytest.raises(ConfigValueTypeError, match="custom_thing"):
        ConversableAgent(
            "agent", llm_config={"config_list": server.config_list(), "custom_thing": object()}
        )
    entry = {**server.config_list()[0], "weird": {1, 2}}
    with pytest.raises(ConfigValueTypeError, match=r"config_list\[0\]\['weird'\]"):
        ConversableAgent("agent", llm_config={"config_list": [entry]})


def test_an_unknown_json_key_is_sent_with_each_request(server: ScriptedModelServer) -> None:
    server.push("Fine. TERMINATE")
    config = {"config_list": server.config_list(), "top_p": 0.5, "seed": 7}
    assistant = ConversableAgent("assistant", llm_config=config, human_input_mode="NEVER")

    _quiet("user", 0).initiate_chat(assistant, message="hi", silent=True)

    body = server.requests[0].body
    assert body["top_p"] == 0.5
    assert body["seed"] == 7
    assert _cfg(assistant)["top_p"] == 0.5  # the dict AutoGen code reads is the user's


# -- bug 2: max_consecutive_auto_reply is a method


def test_max_consecutive_auto_reply_is_a_method_with_per_sender_limits() -> None:
    agent = _quiet("a0", 2)
    other = _quiet("a1", 0)
    assert agent.max_consecutive_auto_reply() == agent.max_consecutive_auto_reply(other) == 2

    agent.update_max_consecutive_auto_reply(1)
    assert agent.max_consecutive_auto_reply() == agent.max_consecutive_auto_reply(other) == 1

    agent.update_max_consecutive_auto_reply(5, sender=other)
    assert agent.max_consecutive_auto_reply(other) == 5
    assert agent.max_consecutive_auto_reply() == 1


# -- bug 3: the auto-reply counter is kept across sends


def test_the_auto_reply_limit_holds_across_sends() -> None:
    receiver = _quiet("receiver", 1)
    sender = _quiet("sender", 0)

    sender.initiate_chat(receiver, message="hello", silent=True)
    sender.send("bye", receiver, silent=True)
    sender.send("bye again", receiver, silent=True)

    contents = [m["content"] for m in sender.chat_messages[receiver]]
    assert contents == ["hello", "", "bye", "bye again", ""]


def test_a_new_chat_resets_the_counter() -> None:
    receiver = _quiet("receiver", 1)
    sender = _quiet("sender", 0)

    sender.initiate_chat(receiver, message="hello", silent=True)
    assert receiver._consecutive_auto_reply_counter[sender] == 1
    again = sender.initiate_chat(receiver, message="hello again", silent=True)

    assert [m["content"] for m in again.chat_history] == ["hello again", ""]
    assert again.chat_history[-1]["role"] == "user"  # the initiator's view of the reply


def test_reset_consecutive_auto_reply_counter_lets_a_send_be_answered() -> None:
    receiver = _quiet("receiver", 1)
    sender = _quiet("sender", 0)
    sender.initiate_chat(receiver, message="hello", silent=True)

    receiver.reset_consecutive_auto_reply_counter(sender)
    sender.send("bye", receiver, silent=True)

    assert [m["content"] for m in sender.chat_messages[receiver]] == ["hello", "", "bye", ""]


# -- refusals at construction


@pytest.mark.parametrize("name", ["agent name", "agent_name ", " agent\nname", "agent\tname"])
def test_a_name_with_whitespace_is_refused_only_with_a_model(
    name: str, server: ScriptedModelServer
) -> None:
    assert ConversableAgent(name, llm_config=False).name == name
    with pytest.raises(AgentConfigError, match="whitespace") as caught:
        ConversableAgent(name, llm_config={"config_list": server.config_list()})
    assert isinstance(caught.value, ValueError)
    azure = server.config_list(api_type="azure", api_version="2024-06-01")
    assert ConversableAgent(name, llm_config={"config_list": azure}).name == name


@pytest.mark.parametrize("trigger", [1, 2.5, [ConversableAgent, 3], object()])
def test_a_trigger_that_is_no_type_name_agent_or_callable_is_refused(trigger: Any) -> None:
    agent = _quiet("a0", 0)
    with pytest.raises(AgentConfigError, match="trigger") as caught:
        agent.register_reply(trigger, lambda recipient, messages, sender, config: (True, "hi"))
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ValueError, match="trigger"):
        agent._match_trigger(1, _quiet("a1", 0))


def test_every_kind_of_trigger_is_accepted_and_matched() -> None:
    agent = _quiet("a0", 0)
    peer = _quiet("a1", 0)
    replies = [
        (peer, "agent"),
        ("a1", "name"),
        (ConversableAgent, "class"),
        (lambda sender: sender.name.startswith("a"), "callable"),
        (lambda sender: sender.name.startswith("b"), "never"),
        (["nobody", peer], "list"),
    ]
    seen = []
    for trigger, text in replies:
        agent.register_reply(trigger, lambda recipient, messages, sender, config, t=text: (True, t))
        peer.initiate_chat(agent, message="hi", silent=True)
        seen.append(peer.last_message(agent)["content"])  # type: ignore[index]
    assert seen == ["agent", "name", "class", "callable", "callable", "list"]


def test_every_agent_is_an_agent_for_triggers_and_type_hints() -> None:
    agent, peer = (
        _quiet("a0", 0),
        UserProxyAgent("a1", human_input_mode="NEVER", max_consecutive_auto_reply=0),
    )
    assert isinstance(peer, Agent)
    agent.register_reply(
        [Agent, None], lambda recipient, messages, sender, config: (True, "any agent")
    )
    peer.initiate_chat(agent, message="hi", silent=True)
    assert peer.last_message(agent)["content"] == "any agent"  # type: ignore[index]
    assert agent.generate_reply([{"role": "user", "content": "x"}]) == "any agent"
