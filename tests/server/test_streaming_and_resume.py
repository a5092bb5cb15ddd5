"""Streamed tokens on the event stream; a group chat resumed in its speaker order after a
restart; a pair on its own journal (what `moot chats show` reads is what the API serves) resumed
after a restart: uvicorn on loopback, httpx clients, a scripted model."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import anyio
from serve_helpers import SLOW, admin_client, read_events, running_server

from moot.journal import InMemoryChatStore, open_store
from moot.testing import Reply

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from moot.server import Teams
    from moot.testing import RecordedRequest, ScriptedModelServer


async def _start(client: httpx.AsyncClient, team: str, message: str) -> str:
    started = await client.post("/chats", json={"team": team, "message": message})
    assert started.status_code == 201, started.text
    return str(started.json()["chat_id"])


async def test_tokens_stream_before_the_turn_is_journaled(
    teams: Teams, model: ScriptedModelServer
) -> None:
    model.push(SLOW)  # the answer streams for minutes: no turn is journaled meanwhile
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = await _start(client, "stream", "tell me a story")
            events = await read_events(client, chat_id, until="token")
            event_id, kind, token = events[-1]
            assert kind == "token"
            assert event_id is None  # ephemeral: a token is not a resume point
            assert token["speaker"] == "assistant"
            assert token["turn"] == 2
            assert token["text"]
            chat = (await client.get(f"/chats/{chat_id}")).json()
            assert [t["speaker"] for t in chat["transcript"]] == ["user"]  # turn 2 streams on
            # A reconnect gets the durable events after its id, then the turn so far.
            last_durable = max(i for i, _, _ in events if i is not None)
            again = await read_events(client, chat_id, after=last_durable, until="token")
            assert [i for i, _, _ in again] == [None]
            assert len(again[0][2]["text"]) >= len(token["text"])
            assert (await client.post(f"/chats/{chat_id}/stop")).json() == {"stopped": True}
            assert [e.kind for e in await store.events(chat_id)].count("token") == 0


async def test_a_finished_streamed_turn_is_one_durable_turn_event(
    teams: Teams, model: ScriptedModelServer
) -> None:
    model.push("one two three TERMINATE")
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = await _start(client, "stream", "count")
            events = await read_events(client, chat_id)
            durable = [(i, k) for i, k, _ in events if i is not None]
            assert [i for i, _ in durable] == list(range(1, len(durable) + 1))
            turns = [d for _, k, d in events if k == "turn"]
            assert turns[-1]["message"]["content"] == "one two three TERMINATE"
            streamed = "".join(d["text"] for _, k, d in events if k == "token")
            assert "one two three TERMINATE".startswith(streamed)  # what this reader saw of it
    assert model.requests[-1].stream


def _script(model: ScriptedModelServer, hang_at: int | None) -> threading.Event:
    """Each model call answers from the message it answers (the same history, the same reply);
    call number `hang_at` hangs instead (the server restarts under it) and sets the event."""
    hung = threading.Event()
    seen: list[int] = []

    def answer(request: RecordedRequest) -> Reply | str:
        seen.append(1)
        if hang_at is not None and len(seen) == hang_at:
            hung.set()
            return Reply(hang=True)
        return f"after: {request.last_text[:40]}"

    model.default = answer
    return hung


def _transcript(chat: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["speaker"], t["message"].get("content") or "") for t in chat["transcript"]]


async def test_a_group_chat_cut_off_by_a_restart_goes_on_in_its_speaker_order(
    teams: Teams, model: ScriptedModelServer, tmp_path: Path
) -> None:
    _script(model, hang_at=None)
    async with InMemoryChatStore() as memory, running_server(memory, teams) as (_, base):
        async with admin_client(base) as client:
            whole_id = await _start(client, "trio", "write together")
            await read_events(client, whole_id)
            whole = (await client.get(f"/chats/{whole_id}")).json()
    model.requests.clear()

    hung = _script(model, hang_at=3)  # a and b have spoken; c's call hangs
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = await _start(client, "trio", "write together")
            await anyio.to_thread.run_sync(hung.wait)
            cut = (await client.get(f"/chats/{chat_id}")).json()
    assert cut["status"] == "running"
    assert [s for s, _ in _transcript(cut)] == ["user", "a", "b"]
    model.requests.clear()
    _script(model, hang_at=None)
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            await read_events(client, chat_id)
            resumed = (await client.get(f"/chats/{chat_id}")).json()
    assert resumed["status"] == "finished"
    assert _transcript(resumed) == _transcript(whole)
    assert [s for s, _ in _transcript(resumed)][:5] == ["user", "a", "b", "c", "user"]


async def test_a_group_chat_waiting_for_a_human_survives_a_restart(
    teams: Teams, model: ScriptedModelServer, tmp_path: Path
) -> None:
    model.push("from a", "again a")
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = await _start(client, "panel", "let us talk")
            asked = await read_events(client, chat_id, until="input.asked")
    assert len(model.requests) == 1
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            pending = (await client.get(f"/chats/{chat_id}")).json()["pending"]
            assert [p["token"] for p in pending] == [asked[-1][2]["token"]]  # asked once
            answer = {"text": "my turn", "token": pending[0]["token"]}
            assert (await client.post(f"/chats/{chat_id}/input", json=answer)).status_code == 200
            await read_events(client, chat_id, after=asked[-1][0])
            chat = (await client.get(f"/chats/{chat_id}")).json()
    assert chat["status"] == "finished"
    assert _transcript(chat) == [
        ("human", "let us talk"),
        ("a", "from a"),
        ("human", "my turn"),
        ("a", "again a"),
    ]
    assert len(model.requests) == 2  # the resumed chat asked no model again for a's turn


def _moot_show(url: str, chat_id: str) -> dict[str, Any]:
    """`moot chats show ID --json` in its own process, as a user reads the journal."""
    shown = subprocess.run(
        [sys.executable, "-m", "moot.cli", "chats", "show", chat_id, "--store", url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


async def test_a_pair_is_one_journal_that_moot_chats_show_and_the_api_both_read(
    teams: Teams, model: ScriptedModelServer, tmp_path: Path
) -> None:
    _script(model, hang_at=None)
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = await _start(client, "pair", "plan a trip")
            events = await read_events(client, chat_id)
            served = (await client.get(f"/chats/{chat_id}")).json()
            listed = (await client.get("/chats")).json()["chats"]
    shown = await anyio.to_thread.run_sync(_moot_show, url, chat_id)
    assert served["status"] == shown["summary"]["status"] == "finished"
    rows = [(t["number"], t["speaker"], t["message"], t["tokens"]) for t in shown["turns"]]
    assert rows == [
        (t["number"], t["speaker"], t["message"], t["tokens"]) for t in served["transcript"]
    ]
    streamed = [(d["number"], d["message"]) for _, k, d in events if k == "turn"]
    assert streamed == [(number, message) for number, _, message, _ in rows]
    assert [speaker for _, speaker, _, _ in rows][:3] == ["user", "assistant", "user"]
    # The chat's own journal: its kind and sides, with the server's facts merged in.
    definition = shown["definition"]
    assert definition["policy"] == "two_agent"
    assert definition["participants"] == ["user", "assistant"]
    assert definition["spec"]["team"] == "pair"
    assert definition["spec"]["message"] == "plan a trip"
    assert len(definition["spec"]["token_sha256"]) == 64
    # Each assistant turn carries its model usage; the summaries agree.
    assert all(tokens > 0 for _, speaker, _, tokens in rows if speaker == "assistant")
    assert all(tokens == 0 for _, speaker, _, tokens in rows if speaker == "user")
    (summary,) = [c for c in listed if c["chat_id"] == chat_id]
    assert summary["tokens"] == shown["summary"]["tokens"] == sum(r[3] for r in rows)


async def test_a_pair_cut_off_by_a_restart_resumes_with_no_model_call_repeated(
    teams: Teams, model: ScriptedModelServer, tmp_path: Path
) -> None:
    _script(model, hang_at=None)
    async with InMemoryChatStore() as memory, running_server(memory, teams) as (_, base):
        async with admin_client(base) as client:
            whole_id = await _start(client, "pair", "plan a trip")
            await read_events(client, whole_id)
            whole = (await client.get(f"/chats/{whole_id}")).json()
    calls = len(model.requests)
    model.requests.clear()

    hung = _script(model, hang_at=2)  # the assistant answered once; its second call hangs
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = await _start(client, "pair", "plan a trip")
            await anyio.to_thread.run_sync(hung.wait)
            cut = (await client.get(f"/chats/{chat_id}")).json()
    assert cut["status"] == "running"
    assert [s for s, _ in _transcript(cut)] == ["user", "assistant", "user"]
    answered = model.requests[0].last_text
    model.requests.clear()
    _script(model, hang_at=None)
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            await read_events(client, chat_id)
            resumed = (await client.get(f"/chats/{chat_id}")).json()
    assert resumed["status"] == "finished"
    assert _transcript(resumed) == _transcript(whole)
    # Only the call that never answered is made again; the answered one is not.
    assert len(model.requests) == calls - 1
    assert answered not in [r.last_text for r in model.requests]
    shown = await anyio.to_thread.run_sync(_moot_show, url, chat_id)
    assert [t["message"]["content"] for t in shown["turns"]] == [c for _, c in _transcript(resumed)]
