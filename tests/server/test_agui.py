"""`POST /agui`: a chat as AG-UI runs, every event checked against the `ag-ui-protocol` models;
a human's question ends a run with an interrupt that the next run resumes."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pydantic
from ag_ui.core import Event
from serve_helpers import admin_client, running_server

from moot.journal import InMemoryChatStore

if TYPE_CHECKING:
    import httpx

    from moot.server import Teams
    from moot.testing import ScriptedModelServer

_EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Event)


def _run(thread: str, text: str | None = None, **extra: Any) -> dict[str, Any]:
    messages = [] if text is None else [{"id": uuid.uuid4().hex, "role": "user", "content": text}]
    return {
        "threadId": thread,
        "runId": uuid.uuid4().hex,
        "state": {},
        "messages": messages,
        "tools": [],
        "context": [],
        "forwardedProps": {},
        **extra,
    }


async def _post_run(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> tuple[list[Any], httpx.Headers]:
    """The run's events, each parsed (and so checked) by the protocol's models."""
    found: list[Any] = []
    async with client.stream("POST", "/agui", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                found.append(_EVENTS.validate_python(json.loads(line[5:])))
        return found, response.headers


def _texts(events: list[Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for event in events:
        if event.type == "TEXT_MESSAGE_CONTENT":
            out[event.message_id] = out.get(event.message_id, "") + event.delta
    return out


async def test_a_thread_runs_until_a_question_then_a_resumed_run_answers_it(
    teams: Teams, model: ScriptedModelServer
) -> None:
    model.push("first answer", "second answer TERMINATE")
    thread = uuid.uuid4().hex
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            body = _run(thread, "hi", forwardedProps={"team": "ask"})
            first, headers = await _post_run(client, body)
            assert headers["x-moot-chat-token"]
            kinds = [e.type for e in first]
            assert kinds == [
                "RUN_STARTED",
                "TEXT_MESSAGE_START",
                "TEXT_MESSAGE_CONTENT",
                "TEXT_MESSAGE_END",
                "RUN_FINISHED",
            ]
            assert first[1].name == "assistant"
            assert _texts(first) == {f"{thread}:2": "first answer"}
            interrupt = first[-1].outcome.interrupts[0]
            assert interrupt.reason == "input"
            assert (await client.get(f"/chats/{thread}")).json()["status"] == "waiting"

            wrong = _run(thread, resume=[{"interruptId": "nope", "status": "resolved"}])
            assert (await client.post("/agui", json=wrong)).status_code == 409
            resume = [{"interruptId": interrupt.id, "status": "resolved", "payload": "more"}]
            second, _ = await _post_run(client, _run(thread, resume=resume))
            assert second[0].type == "RUN_STARTED"
            assert second[-1].type == "RUN_FINISHED"
            assert second[-1].outcome.interrupts[0].id != interrupt.id  # asked again
            assert _texts(second) == {
                f"{thread}:3": "more",
                f"{thread}:4": "second answer TERMINATE",
            }

            last = second[-1].outcome.interrupts[0].id
            resume = [{"interruptId": last, "status": "cancelled"}]
            third, _ = await _post_run(client, _run(thread, resume=resume))
            assert third[-1].type == "RUN_FINISHED"
            assert third[-1].outcome.type == "success"
            chat = (await client.get(f"/chats/{thread}")).json()
    assert [t["message"]["content"] for t in chat["transcript"]][:3] == [
        "hi",
        "first answer",
        "more",
    ]


async def test_streamed_tokens_and_the_turn_make_one_message(
    teams: Teams, model: ScriptedModelServer
) -> None:
    model.push("one two three TERMINATE")
    thread = uuid.uuid4().hex
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            events, _ = await _post_run(
                client, _run(thread, "count", forwardedProps={"team": "stream"})
            )
    assert _texts(events) == {f"{thread}:2": "one two three TERMINATE"}
    starts = [e for e in events if e.type == "TEXT_MESSAGE_START"]
    ends = [e for e in events if e.type == "TEXT_MESSAGE_END"]
    assert [e.message_id for e in starts] == [e.message_id for e in ends]
    assert events[-1].outcome.type == "success"


async def test_bad_runs_get_clear_4xx(teams: Teams) -> None:
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            no_team = await client.post("/agui", json=_run("t1", "hi"))
            assert no_team.status_code == 422
            assert "team" in no_team.json()["error"]
            not_a_run = await client.post("/agui", json={"threadId": "t1"})
            assert not_a_run.status_code == 422
            bad_id = await client.post(
                "/agui", json=_run("a/b", "hi", forwardedProps={"team": "pair"})
            )
            assert bad_id.status_code == 422
            no_text = await client.post("/agui", json=_run("t2", forwardedProps={"team": "pair"}))
            assert no_text.status_code == 422
            unknown = await client.post(
                "/agui", json=_run("t3", "hi", forwardedProps={"team": "x"})
            )
            assert unknown.status_code == 404
            schema = (await client.get("/openapi.json")).json()
            assert "threadId" in json.dumps(schema["paths"]["/agui"])
            stranger = await client.post(
                "/agui",
                json=_run("t4", "hi", forwardedProps={"team": "pair"}),
                headers={"Authorization": "Bearer nope"},
            )
            assert stranger.status_code == 403
