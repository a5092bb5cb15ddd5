"""A typed chat result (issue 16 §2) crosses NATS through the codec, as the pydantic instance."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pydantic

from moot.agents import AssistantAgent, UserProxyAgent
from moot.runtime import Agent, AgentId, Envelope, Runtime, handler
from moot.testing import ScriptedModelServer

if TYPE_CHECKING:
    from nats_helpers import RuntimeMaker


class Capital(pydantic.BaseModel):
    country: str
    city: str
    population: int


class Filed(pydantic.BaseModel):
    capital: Capital
    by: str


class Registry(Agent):
    """Files the typed answers it is sent, on another runtime than the chat's."""

    @handler
    async def on_capital(self, message: Capital, ctx: Envelope) -> Filed:
        return Filed(capital=message, by=str(self.id))


def _codec(runtime: Runtime) -> None:
    runtime.codec.register(Capital, name="test.Capital")
    runtime.codec.register(Filed, name="test.Filed")


async def test_a_structured_chat_result_crosses_nats_typed(make_runtime: RuntimeMaker) -> None:
    def worker(runtime: Runtime) -> None:
        _codec(runtime)
        runtime.register("registry", Registry)

    await make_runtime(worker)
    client = await make_runtime(_codec)
    paris: dict[str, Any] = {"country": "France", "city": "Paris", "population": 2102650}
    async with ScriptedModelServer() as server:
        server.push("not json", json.dumps(paris))
        assistant = AssistantAgent(
            "assistant",
            llm_config={"config_list": server.config_list(model="gpt-4o")},
            response_format=Capital,
        )
        user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        result = await user.a_initiate_chat(assistant, message="?", max_turns=1, silent=True)

    assert isinstance(result.output, Capital)
    filed = await client.send(result.output, AgentId("registry", "europe"), timeout=10)
    assert filed == Filed(capital=Capital(**paris), by="registry/europe")
