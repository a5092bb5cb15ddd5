"""A team for `moot serve --nats`: the server builds stand-ins (`teams`), each worker hosts the
same agents (`setup`), all from $MOOT_TEST_MODEL_URL (the test's scripted model)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from moot.agents import AssistantAgent, UserProxyAgent
from moot.agents.distributed import host_agents

if TYPE_CHECKING:
    from moot.runtime import Runtime
    from moot.server import Teams


def pair() -> tuple[UserProxyAgent, AssistantAgent]:
    url = os.environ["MOOT_TEST_MODEL_URL"]
    config = {
        "config_list": [{"model": "scripted", "base_url": url, "api_key": "test"}],
        "cache_seed": None,
    }
    user = UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, default_auto_reply="go on"
    )
    return user, AssistantAgent("assistant", system_message="You are assistant.", llm_config=config)


def teams(registry: Teams) -> None:
    """The server's side: `moot serve --agents serve_nats_app:teams --nats URL`."""
    registry.add("pair", pair, description="a user proxy and an assistant, on workers")


def setup(runtime: Runtime) -> None:
    """A worker's side: `moot worker --agents serve_nats_app:setup`."""
    host_agents(runtime, *pair())
