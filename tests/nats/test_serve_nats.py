"""`moot serve --nats`: the server's chats run on a worker process over a real nats-server; the
server journals each turn and streams it over HTTP as in process."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from serve_helpers import admin_client, read_events, running_server
from serve_nats_app import teams as register_teams

from moot.journal import InMemoryChatStore
from moot.server import Teams
from moot.server._serve import chat_runtime
from moot.testing import ScriptedModelServer

if TYPE_CHECKING:
    import pytest
    from nats_helpers import NatsServer

HELPERS = Path(__file__).resolve().parent.parent / "_helpers"


async def test_serve_with_nats_runs_its_chats_on_a_worker(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedModelServer(default="noted") as model:
        env = {**os.environ, "PYTHONPATH": str(HELPERS), "MOOT_TEST_MODEL_URL": model.base_url}
        with (tmp_path / "worker.log").open("wb") as log:
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "moot.runtime.nats",
                "--nats",
                nats_server.url,
                "--agents",
                "serve_nats_app:setup",
                "--heartbeat",
                "0.2",
                "--member-ttl",
                "1.0",
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=env,
            )
        try:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), 30)
            assert line.startswith(b"moot-worker ready"), (tmp_path / "worker.log").read_text()
            monkeypatch.setenv("MOOT_TEST_MODEL_URL", model.base_url)  # the server's stand-ins
            teams = Teams()
            register_teams(teams)
            options = {"heartbeat": 0.2, "member_ttl": 1.0}
            async with (
                InMemoryChatStore() as store,
                chat_runtime(nats_server.url, **options) as runtime,
                running_server(store, teams, runtime=runtime) as (_, base),
                admin_client(base) as client,
            ):
                assert runtime is not None
                body = {"team": "pair", "message": "plan a trip", "max_turns": 2}
                started = await client.post("/chats", json=body)
                assert started.status_code == 201, started.text
                chat_id = started.json()["chat_id"]
                events = await read_events(client, chat_id)
                turns = [data for _, kind, data in events if kind == "turn"]
                assert [t["speaker"] for t in turns] == ["user", "assistant", "user", "assistant"]
                assert turns[1]["message"]["content"] == "noted"
                assert events[-1][1] == "status"
                chat = (await client.get(f"/chats/{chat_id}")).json()
                assert chat["status"] == "finished"
                assert runtime.agent_types() == frozenset()  # the server hosted nothing
            assert len(model.requests) == 2  # both replies came from the worker's model client
        finally:
            worker.terminate()
            await asyncio.wait_for(worker.wait(), 15)
