"""Classic AutoGen-style agents for the multi-process tests, loaded by workers as
`classic_app:setup`.

Every process builds the same agents (same names) from `MOOT_TEST_MODEL_URL`, the base URL of
the test's `ScriptedModelServer`: each worker gets its own model clients. The client process
builds them too, as stand-ins it names chats with; they run on the workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moot.agents import AssistantAgent, UserProxyAgent
from moot.agents.distributed import host_agents
from moot.groupchat import GroupChat, GroupChatManager

if TYPE_CHECKING:
    from moot.runtime import Runtime
    from moot.testing import RecordedRequest

MEMBERS = ("alice", "bob", "carol")


def llm_config(url: str) -> dict[str, Any]:
    return {
        "config_list": [{"model": "scripted", "base_url": url, "api_key": "test"}],
        "cache_seed": None,
    }


def answer(request: RecordedRequest) -> str:
    """The scripted model's reply: who asked (from the system message) and what it saw, so a
    transcript shows every turn and a turn asked twice shows in the request log."""
    system = str(request.messages[0].get("content", "")) if request.messages else ""
    who = system.removeprefix("You are ").split(".")[0]
    return f"{who} answers turn {len(request.messages)}: {request.last_text[:40]}"


@dataclass
class App:
    user: UserProxyAgent
    assistant: AssistantAgent
    manager: GroupChatManager
    members: tuple[AssistantAgent, ...]
    reviewer: UserProxyAgent  # asks a human on every turn (human_input_mode ALWAYS)
    review: GroupChatManager  # alice, then the reviewer: a chat that waits for a human


def build(url: str | None = None) -> App:
    """The app's agents, talking to the scripted server at `url` (default: the env variable)."""
    url = url or os.environ["MOOT_TEST_MODEL_URL"]
    user = UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, default_auto_reply="go on"
    )
    assistant = AssistantAgent(
        "assistant", system_message="You are assistant.", llm_config=llm_config(url)
    )
    members = tuple(
        AssistantAgent(name, system_message=f"You are {name}.", llm_config=llm_config(url))
        for name in MEMBERS
    )
    group = GroupChat(list(members), max_round=7, speaker_selection_method="round_robin")
    # A worker's manager journals to $MOOT_JOURNAL_URL (the default store); a short lease lets
    # a survivor take a chat over soon after its worker died.
    lease_ttl = float(os.environ.get("MOOT_TEST_LEASE_TTL", "30"))
    manager = GroupChatManager(group, name="chat_manager", llm_config=False, lease_ttl=lease_ttl)
    reviewer = UserProxyAgent("reviewer", human_input_mode="ALWAYS", code_execution_config=False)
    review = GroupChatManager(
        GroupChat([members[0], reviewer], max_round=3, speaker_selection_method="round_robin"),
        name="review_manager",
        llm_config=False,
        lease_ttl=lease_ttl,
    )
    return App(
        user=user,
        assistant=assistant,
        manager=manager,
        members=members,
        reviewer=reviewer,
        review=review,
    )


def setup(runtime: Runtime) -> None:
    """Worker side: host every agent a chat may name."""
    app = build()
    host_agents(
        runtime, app.user, app.assistant, app.manager, *app.members, app.review, app.reviewer
    )
