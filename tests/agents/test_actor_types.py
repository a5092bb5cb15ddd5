"""Each agent object has its own actor type, without a module-global counter."""

from __future__ import annotations

from moot.agents import ConversableAgent
from moot.runtime import Runtime


async def test_two_agents_of_one_name_get_distinct_addresses_on_one_runtime() -> None:
    first = ConversableAgent("twin", llm_config=False)
    second = ConversableAgent("twin", llm_config=False)
    async with Runtime() as runtime:
        await first.attach(runtime)
        await second.attach(runtime)
        a, b = first.participant_id(runtime, "c1"), second.participant_id(runtime, "c1")
        assert a != b
        assert a.type.startswith("moot.agent.twin.")
        assert b.type.startswith("moot.agent.twin.")
        await first.attach(runtime)  # attaching again registers nothing new
        assert first.participant_id(runtime, "c1") == a


def test_an_agent_keeps_its_actor_type() -> None:
    agent = ConversableAgent("solo", llm_config=False)
    with_runtime = Runtime()
    assert agent.participant_id(with_runtime, "x") == agent.participant_id(with_runtime, "x")
