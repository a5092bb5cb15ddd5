"""Helpers for the server tests: teams against a ScriptedModelServer, uvicorn on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

from moot.agents import AssistantAgent, UserProxyAgent
from moot.groupchat import GroupChat, GroupChatManager
from moot.server import ServerApp, Teams
from moot.testing import Reply

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from moot.journal import ChatStore

ADMIN = "admin-token-for-tests"


def make_teams(llm_config: dict[str, Any], work_dir: str) -> Teams:
    """pair: proxy (no human) and assistant; ask: a human answers each reply; code: the
    assistant's code runs locally after approval; group, trio: round-robin group chats;
    stream: the assistant's answers stream."""
    teams = Teams()

    def pair() -> tuple[UserProxyAgent, AssistantAgent]:
        proxy = UserProxyAgent(
            "user",
            human_input_mode="NEVER",
            max_consecutive_auto_reply=2,
            code_execution_config=False,
        )
        return proxy, AssistantAgent("assistant", llm_config=llm_config)

    def ask() -> tuple[UserProxyAgent, AssistantAgent]:
        proxy = UserProxyAgent("human", human_input_mode="ALWAYS", code_execution_config=False)
        return proxy, AssistantAgent("assistant", llm_config=llm_config)

    def code() -> tuple[UserProxyAgent, AssistantAgent]:
        proxy = UserProxyAgent(
            "runner",
            human_input_mode="NEVER",
            max_consecutive_auto_reply=1,
            code_execution_config={"work_dir": work_dir, "use_docker": False, "timeout": 30},
            approve_code="always",
        )
        return proxy, AssistantAgent("assistant", llm_config=llm_config)

    def group() -> tuple[UserProxyAgent, GroupChatManager]:
        user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        writers = [AssistantAgent(name, llm_config=llm_config) for name in ("a", "b")]
        chat = GroupChat(
            agents=[user, *writers],
            messages=[],
            max_round=4,
            speaker_selection_method="round_robin",
        )
        return user, GroupChatManager(chat, llm_config=False, store=None)

    def stream() -> tuple[UserProxyAgent, AssistantAgent]:
        proxy = UserProxyAgent(
            "user",
            human_input_mode="NEVER",
            max_consecutive_auto_reply=0,
            code_execution_config=False,
        )
        return proxy, AssistantAgent("assistant", llm_config={**llm_config, "stream": True})

    def trio() -> tuple[UserProxyAgent, GroupChatManager]:
        user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        writers = [AssistantAgent(name, llm_config=llm_config) for name in ("a", "b", "c")]
        chat = GroupChat(
            agents=[user, *writers],
            messages=[],
            max_round=8,
            speaker_selection_method="round_robin",
        )
        return user, GroupChatManager(chat, llm_config=False, store=None)

    def panel() -> tuple[UserProxyAgent, GroupChatManager]:
        human = UserProxyAgent("human", human_input_mode="ALWAYS", code_execution_config=False)
        chat = GroupChat(
            agents=[human, AssistantAgent("a", llm_config=llm_config)],
            messages=[],
            max_round=4,
            speaker_selection_method="round_robin",
        )
        return human, GroupChatManager(chat, llm_config=False, store=None)

    teams.add("pair", pair, description="a user proxy and an assistant")
    teams.add("panel", panel, description="a group chat in which a human takes turns")
    teams.add("stream", stream, description="the assistant's answer streams token by token")
    teams.add("trio", trio, description="a round-robin group chat of three writers")
    teams.add("group", group, description="a round-robin group chat")
    teams.add("ask", ask, description="a human answers each reply")
    teams.add("code", code, description="code runs after approval")
    return teams


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_server(
    store: ChatStore, teams: Teams, **options: Any
) -> AsyncIterator[tuple[ServerApp, str]]:
    """uvicorn serving a ServerApp on 127.0.0.1 in this event loop; yields (app, base URL)."""
    app = ServerApp(store, teams, admin_token=ADMIN, **options)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)  # uvicorn has no started event to wait on
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def admin_client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    )


async def read_events(
    client: httpx.AsyncClient,
    chat_id: str,
    *,
    after: int | None = None,
    until: str | None = None,
    count: int | None = None,
) -> list[tuple[int | None, str, dict[str, Any]]]:
    """Read SSE events until the stream ends, an event of kind `until`, or `count` events."""
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    found: list[tuple[int | None, str, dict[str, Any]]] = []
    async with client.stream("GET", f"/chats/{chat_id}/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        event_id: int | None = None
        kind = "message"
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                found.append((event_id, kind, json.loads(line[5:].strip())))
                if kind == until or (count is not None and len(found) >= count):
                    return found
            elif line == "":
                event_id, kind = None, "message"
    return found


#: An answer that streams for minutes (a byte per millisecond, two thousand words): a test sees
#: its first tokens long before its turn could end, then stops the chat.
SLOW = Reply(" ".join(["word"] * 2000), drip=0.001)
