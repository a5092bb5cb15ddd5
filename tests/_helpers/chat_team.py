"""A 12-turn group chat of three assistants against a scripted model server, run in a child
process by the durability tests (and by `moot chats resume --agents chat_team:setup`).

The server's URL comes from $DURABLE_MODEL_URL. Run as a script it starts (or, with `resume`,
resumes) one chat, prints `turn N` once each turn is durable, and prints the transcript last.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from moot.agents import AssistantAgent, ScriptedInputProvider, UserProxyAgent
from moot.groupchat import ChatWaitingForInputError, GroupChat, GroupChatManager
from moot.journal import ChatLease, GroupCommitStore, LeaseHeldError, Turn, store_from_url
from moot.testing import RecordedRequest, Reply

TURNS = 12


def answer(request: RecordedRequest) -> Reply:
    """The scripted server's answer: who asks (their system message) and how much they heard."""
    who = str(request.messages[0].get("content", ""))
    return Reply(f"{who} hears {len(request.messages) - 1} messages", latency=0.02)


def setup(
    team: str | None = None, *, store: Any = "default", url: str | None = None
) -> GroupChatManager:
    """The manager of the team (one team here, whatever its name)."""
    del team
    base_url = url or os.environ["DURABLE_MODEL_URL"]
    config = {"config_list": [{"model": "scripted", "base_url": base_url, "api_key": "x"}]}
    agents = [
        AssistantAgent(name, system_message=f"You are {name}.", llm_config=config)
        for name in ("a", "b", "c")
    ]
    group = GroupChat(agents, max_round=TURNS + 1, speaker_selection_method="round_robin")
    ttl = float(os.environ.get("DURABLE_LEASE_TTL", "30"))
    return GroupChatManager(group, store=store, lease_ttl=ttl)


def setup_human(team: str | None = None, *, store: Any = "default") -> GroupChatManager:
    """a, then a human (no one at the keyboard here: the question waits), then b; 3 turns."""
    del team
    config = {
        "config_list": [
            {"model": "scripted", "base_url": os.environ["DURABLE_MODEL_URL"], "api_key": "x"}
        ]
    }
    human = UserProxyAgent(
        "human",
        human_input_mode="ALWAYS",
        code_execution_config=False,
        input_provider=ScriptedInputProvider([]),
    )
    agents = [
        AssistantAgent("a", system_message="You are a.", llm_config=config),
        human,
        AssistantAgent("b", system_message="You are b.", llm_config=config),
    ]
    group = GroupChat(agents, max_round=4, speaker_selection_method="round_robin")
    return GroupChatManager(group, store=store)


class AnnouncingStore(GroupCommitStore):
    """Prints `turn N` once turn N is committed: the parent kills on the line it waits for."""

    async def append_turn(
        self, chat_id: str, turn: Turn, *, lease: ChatLease | None = None
    ) -> None:
        await super().append_turn(chat_id, turn, lease=lease)
        print(f"turn {turn.number}", flush=True)  # noqa: T201


async def main(store_url: str, chat_id: str, mode: str) -> None:
    if mode == "human":
        try:
            await setup_human(store=store_url).a_run("Plan the release.", chat_id=chat_id)
        except ChatWaitingForInputError as exc:
            print(f"waiting {exc.prompt}", flush=True)  # noqa: T201
        return
    async with AnnouncingStore(store_from_url(store_url)) as store:
        manager = setup(store=store)
        while True:
            try:
                result = await manager.a_run(
                    "Count with us." if mode == "start" else None, chat_id=chat_id
                )
                break
            except LeaseHeldError as exc:  # the killed process's lease runs out first
                if mode == "start":
                    raise
                await asyncio.sleep(max(0.0, exc.expires_at - time.time()) + 0.05)
    print("transcript " + json.dumps(result.chat_history), flush=True)  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
