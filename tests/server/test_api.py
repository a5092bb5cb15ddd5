"""`moot serve`'s API over real HTTP: uvicorn on loopback, httpx clients, a scripted model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from serve_helpers import ADMIN, admin_client, read_events, running_server

from moot.journal import InMemoryChatStore, open_store
from moot.server import ServerConfigError
from moot.server._serve import admin_token

if TYPE_CHECKING:
    from pathlib import Path

    from moot.server import Teams
    from moot.testing import ScriptedModelServer

CODE = "```python\nopen('ran.txt', 'w').write('x')\nprint(6 * 7)\n```"


async def test_start_list_stream_and_transcript(teams: Teams) -> None:
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            started = await client.post("/chats", json={"team": "pair", "message": "hello"})
            assert started.status_code == 201
            chat_id = started.json()["chat_id"]
            events = await read_events(client, chat_id)
            kinds = [kind for _, kind, _ in events]
            assert kinds[0] == "chat.created"
            assert kinds[-1] == "status"
            turns = [data for _, kind, data in events if kind == "turn"]
            assert [t["speaker"] for t in turns] == ["user", "assistant"]
            assert turns[1]["message"]["content"] == "fine. TERMINATE"
            assert [i for i, _, _ in events] == list(range(1, len(events) + 1))

            listed = (await client.get("/chats")).json()["chats"]
            assert listed[0]["chat_id"] == chat_id
            assert listed[0]["status"] == "finished"
            assert listed[0]["team"] == "pair"
            assert listed[0]["turns"] == 2
            assert listed[0]["tokens"] > 0
            chat = (await client.get(f"/chats/{chat_id}")).json()
            assert [t["speaker"] for t in chat["transcript"]] == ["user", "assistant"]
            assert (await client.get("/healthz")).json()["ok"] is True
            schema = (await client.get("/openapi.json")).json()
            assert "/chats/{chat_id}/events" in schema["paths"]


async def test_a_group_chat_team_streams_each_speaker(
    teams: Teams, model: ScriptedModelServer
) -> None:
    model.push("from a", "from b")
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = (
                await client.post("/chats", json={"team": "group", "message": "hi all"})
            ).json()["chat_id"]
            events = await read_events(client, chat_id)
            assert events[0][1] == "chat.created"
            assert events[0][2]["opening"]["content"] == "hi all"
            turns = [(d["speaker"], d["message"]["content"]) for _, k, d in events if k == "turn"]
            assert turns[:2] == [("a", "from a"), ("b", "from b")]
            assert events[-1][1] == "status"
            assert events[-1][2]["status"] == "finished"
            chat = (await client.get(f"/chats/{chat_id}")).json()
            assert chat["team"] == "group"
            assert chat["transcript"][0]["speaker"] == "user"
            assert [t["number"] for t in chat["transcript"][:2]] == [0, 1]
            definition = await store.definition(chat_id)
            assert definition.spec["kind"] == "group"  # the group's own journal: one row


async def test_reconnect_with_last_event_id_has_no_gap_and_no_duplicate(teams: Teams) -> None:
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = (await client.post("/chats", json={"team": "ask", "message": "hi"})).json()[
                "chat_id"
            ]
            first = await read_events(client, chat_id, count=2)
            asked = await read_events(client, chat_id, after=first[-1][0], until="input.asked")
            await client.post(f"/chats/{chat_id}/input", json={"text": "exit"})
            rest = await read_events(client, chat_id, after=asked[-1][0])
            ids = [i for i, _, _ in first + asked + rest]
            assert ids == list(range(1, len(ids) + 1))
            assert rest[-1][1] == "status"
            assert rest[-1][2]["status"] == "finished"


async def test_human_input_answered_over_post(teams: Teams, model: ScriptedModelServer) -> None:
    model.push("first answer", "second answer TERMINATE")
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = (await client.post("/chats", json={"team": "ask", "message": "hi"})).json()[
                "chat_id"
            ]
            asked = await read_events(client, chat_id, until="input.asked")
            token = asked[-1][2]["token"]
            assert (await client.get(f"/chats/{chat_id}")).json()["status"] == "waiting"
            answered = await client.post(
                f"/chats/{chat_id}/input", json={"text": "tell me more", "token": token}
            )
            assert answered.status_code == 200
            again = await client.post(
                f"/chats/{chat_id}/input", json={"text": "twice", "token": token}
            )
            assert again.status_code == 409
            await read_events(client, chat_id, after=asked[-1][0], until="input.asked")
            await client.post(f"/chats/{chat_id}/input", json={"text": "exit"})
            await read_events(client, chat_id)
            chat = (await client.get(f"/chats/{chat_id}")).json()
            texts = [t["message"]["content"] for t in chat["transcript"]]
            assert texts == ["hi", "first answer", "tell me more", "second answer TERMINATE"]
            assert model.requests[-1].last_text == "tell me more"


@pytest.mark.parametrize("approved", [True, False])
async def test_code_runs_only_after_approval(
    teams: Teams, model: ScriptedModelServer, work_dir: Path, approved: bool
) -> None:
    model.push(CODE, "done. TERMINATE")
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = (
                await client.post("/chats", json={"team": "code", "message": "run it"})
            ).json()["chat_id"]
            asked = await read_events(client, chat_id, until="approval.asked")
            assert asked[-1][2]["kind"] == "code"
            assert "6 * 7" in asked[-1][2]["content"]
            pending = (await client.get(f"/chats/{chat_id}")).json()["pending"]
            assert len(pending) == 1
            assert pending[0]["approval"] is True
            assert not list(work_dir.rglob("ran.txt"))  # nothing ran before the approval
            wrong = await client.post(f"/chats/{chat_id}/input", json={"text": "yes"})
            assert wrong.status_code == 409  # an approval is not answered as input
            answer = await client.post(
                f"/chats/{chat_id}/approval", json={"approved": approved, "reason": "not today"}
            )
            assert answer.status_code == 200
            events = await read_events(client, chat_id, after=asked[-1][0])
            runs = [data for _, kind, data in events if kind == "code.run"]
            if approved:
                assert runs[0]["exit_code"] == 0
                assert "42" in runs[0]["output"]
                assert list(work_dir.rglob("ran.txt"))
            else:
                assert runs[0]["exit_code"] == 1
                assert not list(work_dir.rglob("ran.txt"))
                assert "approval denied: not today" in model.requests[-1].last_text


async def test_stop_ends_a_waiting_chat(teams: Teams) -> None:
    async with InMemoryChatStore() as store, running_server(store, teams) as (app, base):
        async with admin_client(base) as client:
            chat_id = (await client.post("/chats", json={"team": "ask", "message": "hi"})).json()[
                "chat_id"
            ]
            await read_events(client, chat_id, until="input.asked")
            assert (await client.post(f"/chats/{chat_id}/stop")).json() == {"stopped": True}
            chat = (await client.get(f"/chats/{chat_id}")).json()
            assert chat["status"] == "finished"
            assert chat["termination"] == "stopped"
            assert (await client.post(f"/chats/{chat_id}/stop")).json() == {"stopped": False}
            assert app.runner.active() == 0


async def test_tokens_admin_and_per_chat(teams: Teams) -> None:
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as admin, httpx.AsyncClient(base_url=base) as anon:
            one = (await admin.post("/chats", json={"team": "pair", "message": "a"})).json()
            two = (await admin.post("/chats", json={"team": "pair", "message": "b"})).json()
            assert (await anon.get("/chats")).status_code == 401
            assert (await anon.get(f"/chats/{one['chat_id']}")).status_code == 401
            bad = {"Authorization": "Bearer nope"}
            assert (await anon.get("/chats", headers=bad)).status_code == 403
            assert (await anon.get(f"/chats/{one['chat_id']}", headers=bad)).status_code == 403
            mine = {"Authorization": f"Bearer {one['token']}"}
            assert (await anon.get(f"/chats/{one['chat_id']}", headers=mine)).status_code == 200
            assert (await anon.get(f"/chats/{two['chat_id']}", headers=mine)).status_code == 403
            assert (await anon.get("/chats", headers=mine)).status_code == 403
            events = await anon.get(
                f"/chats/{two['chat_id']}/events", params={"access_token": one["token"]}
            )
            assert events.status_code == 403
            assert (await anon.get("/healthz")).status_code == 200


async def test_bad_bodies_get_clear_4xx(teams: Teams) -> None:
    async with (
        InMemoryChatStore() as store,
        running_server(store, teams, max_body=1024) as (
            _,
            base,
        ),
    ):
        async with admin_client(base) as client:
            big = await client.post("/chats", json={"team": "pair", "message": "x" * 5000})
            assert big.status_code == 413
            assert "body" in big.json()["error"]
            broken = await client.post(
                "/chats", content=b"{not json", headers={"Content-Type": "application/json"}
            )
            assert broken.status_code == 400
            assert broken.json() == {"error": "the body is not JSON"}
            missing = await client.post("/chats", json={"team": "pair"})
            assert missing.status_code == 422
            assert missing.json()["problems"][0]["field"] == "message"
            extra = await client.post("/chats", json={"team": "pair", "message": "a", "x": 1})
            assert extra.status_code == 422
            unknown = await client.post("/chats", json={"team": "nope", "message": "a"})
            assert unknown.status_code == 404
            assert "nope" in unknown.json()["error"]
            assert (await client.get("/chats/nope")).status_code == 404
            assert (await client.get("/chats", params={"limit": "x"})).status_code == 400
            assert (await client.get("/chats", params={"cursor": "garbage"})).status_code == 400
            events = await client.get("/chats/x/events", headers={"Last-Event-ID": "abc"})
            assert events.status_code in (400, 404)


async def test_restart_while_waiting_for_input_then_the_answer_completes_it(
    teams: Teams, model: ScriptedModelServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    model.push("first answer", "second answer TERMINATE")
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            started = (await client.post("/chats", json={"team": "ask", "message": "hi"})).json()
            chat_id, chat_token = started["chat_id"], started["token"]
            await read_events(client, chat_id, until="input.asked")
    assert len(model.requests) == 1
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {chat_token}"}
        ) as client:
            assert (await client.get(f"/chats/{chat_id}")).json()["status"] == "waiting"
            first = await read_events(client, chat_id, until="input.asked")
            await client.post(f"/chats/{chat_id}/input", json={"text": "tell me more"})
            asked = await read_events(client, chat_id, after=first[-1][0], until="input.asked")
            assert asked[-1][2]["token"] != first[-1][2]["token"]  # the next question
            await client.post(f"/chats/{chat_id}/input", json={"text": "exit"})
            await read_events(client, chat_id, after=asked[-1][0])
            chat = (await client.get(f"/chats/{chat_id}")).json()
    texts = [t["message"]["content"] for t in chat["transcript"]]
    assert texts == ["hi", "first answer", "tell me more", "second answer TERMINATE"]
    assert chat["status"] == "finished"
    assert len(model.requests) == 2  # the resumed chat asked no model again for turn 2


async def test_a_pending_approval_survives_a_restart(
    teams: Teams, model: ScriptedModelServer, work_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    model.push(CODE, "done. TERMINATE")
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat_id = (
                await client.post("/chats", json={"team": "code", "message": "run it"})
            ).json()["chat_id"]
            await read_events(client, chat_id, until="approval.asked")
    async with await open_store(url) as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            pending = (await client.get(f"/chats/{chat_id}")).json()["pending"]
            assert len(pending) == 1
            assert pending[0]["approval"] is True
            await client.post(f"/chats/{chat_id}/approval", json={"approved": True})
            events = await read_events(client, chat_id)
            runs = [d for _, k, d in events if k == "code.run"]
            assert runs
            assert runs[-1]["exit_code"] == 0
    assert list(work_dir.rglob("ran.txt"))
    assert len(model.requests) == 2


async def test_a_reader_that_falls_behind_is_cut_off_with_its_resume_point(
    teams: Teams, model: ScriptedModelServer
) -> None:
    async with (
        InMemoryChatStore() as store,
        running_server(store, teams, reader_buffer=2) as (
            _,
            base,
        ),
    ):
        async with admin_client(base) as client:
            chat_id = (await client.post("/chats", json={"team": "pair", "message": "a"})).json()[
                "chat_id"
            ]
            while (await client.get(f"/chats/{chat_id}")).json()["status"] != "finished":
                await read_events(client, chat_id)  # waits for the end
            cut = await read_events(client, chat_id)
            assert cut[-1][1] == "cutoff"
            resume = cut[-1][2]["resume_after"]
            assert resume == cut[-2][0] == 2
            rest = await read_events(client, chat_id, after=resume)
            assert rest[0][0] == resume + 1


def test_a_public_bind_without_a_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOOT_SERVE_TOKEN", raising=False)
    with pytest.raises(ServerConfigError, match="without a token"):
        admin_token("0.0.0.0", None)
    assert admin_token("0.0.0.0", ADMIN) == (ADMIN, False)
    generated, made = admin_token("127.0.0.1", None)
    assert made
    assert len(generated) >= 24


def test_moot_serve_refuses_a_public_bind_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from moot.cli import main

    monkeypatch.delenv("MOOT_SERVE_TOKEN", raising=False)
    code = main(["serve", "--agents", "serve_helpers:make_teams", "--host", "0.0.0.0"])
    assert code == 2
    assert "without a token" in capsys.readouterr().err
