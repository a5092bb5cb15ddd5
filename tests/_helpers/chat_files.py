"""A group chat whose code writes a work file in turn 2 and reads it in turn 4: a coder with a
scripted model and a runner that runs its code (locally, or in the Docker sandbox).

Used in process by tests/journal/test_durable_work_files.py, and run as a script in a child
process (`chat_files.py STORE_URL CHAT_ID start|resume docker|local`) that prints `turn N` once
turn N is durable and the transcript last.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from moot.agents import AssistantAgent, UserProxyAgent
from moot.groupchat import GroupChat, GroupChatManager
from moot.journal import ChatLease, GroupCommitStore, LeaseHeldError, Turn, store_from_url
from moot.testing import RecordedRequest, Reply

WRITE = (
    "```python\nwith open('note.txt', 'w') as f:\n    f.write('written in turn 2')\n"
    "print('wrote')\n```"
)
READ = "```python\nprint(open('note.txt').read())\n```"
OPENING = "Leave a note, then read it back."


def coder_answer(request: RecordedRequest) -> Reply:
    """Turn 1 writes the note, turn 3 reads it (slowly: a kill after turn 2 lands in turn 3)."""
    heard = len(request.messages) - 1
    if heard <= 1:
        return Reply(WRITE)
    return Reply(READ, latency=0.3)


def setup(url: str, *, docker: bool, store: Any) -> GroupChatManager:
    """The coder and the runner, round robin, four turns after the opening message."""
    config = {"config_list": [{"model": "scripted", "base_url": url, "api_key": "x"}]}
    coder = AssistantAgent("coder", system_message="You write code.", llm_config=config)
    runner = UserProxyAgent(
        "runner",
        human_input_mode="NEVER",
        code_execution_config={"use_docker": docker, "work_dir": None, "timeout": 30},
    )
    group = GroupChat([coder, runner], max_round=5, speaker_selection_method="round_robin")
    ttl = float(os.environ.get("DURABLE_LEASE_TTL", "30"))
    return GroupChatManager(group, store=store, lease_ttl=ttl)


class AnnouncingStore(GroupCommitStore):
    """Prints `turn N` once turn N is committed: the parent kills on the line it waits for."""

    async def append_turn(
        self, chat_id: str, turn: Turn, *, lease: ChatLease | None = None
    ) -> None:
        await super().append_turn(chat_id, turn, lease=lease)
        print(f"turn {turn.number}", flush=True)  # noqa: T201


async def main(store_url: str, chat_id: str, mode: str, where: str) -> None:
    url = os.environ["DURABLE_MODEL_URL"]
    async with AnnouncingStore(store_from_url(store_url)) as store:
        manager = setup(url, docker=where == "docker", store=store)
        while True:
            try:
                result = await manager.a_run(
                    OPENING if mode == "start" else None, chat_id=chat_id, sender="user"
                )
                break
            except LeaseHeldError as exc:  # the killed process's lease runs out first
                if mode == "start":
                    raise
                await asyncio.sleep(max(0.0, exc.expires_at - time.time()) + 0.05)
    print("transcript " + json.dumps(result.chat_history), flush=True)  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
