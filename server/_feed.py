"""A chat's events for one reader: read from the journal into a bounded buffer.

The journal is the source: a chat only wakes its readers (never waits for them), and each
reader pulls from the journal at its own pace. Streamed tokens come from memory as `token`
events without an id: they are not journaled, and the turn event that follows carries the whole
message; a reader that reconnects gets, after the durable events, the turn in progress so far.
When a reader's buffer is full, the reader is cut off with its resume point (the last event id
it was given); it reconnects with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from moot.journal import ChatStatus

from ._runner import APPROVAL_PREFIX, opening_message

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from moot.journal import JournalEvent

    from ._runner import ChatRunner
    from ._tokens import TokenBuffer

CUTOFF = object()


async def _enrich(
    runner: ChatRunner, chat_id: str, events: list[JournalEvent]
) -> list[dict[str, Any]]:
    """Add what a client shows: a turn's message and usage, a question's prompt."""
    store = runner.store
    numbers = [int(e.data["number"]) for e in events if e.kind == "turn" and "number" in e.data]
    turns = (
        {t.number: t for t in await store.turns(chat_id, after=min(numbers) - 1)} if numbers else {}
    )
    prompts: dict[str, str] = {}
    if any(e.kind == "input.asked" for e in events):
        prompts = {q.token: q.prompt for q in await store.inputs(chat_id)}
    opening: dict[str, Any] | None = None
    if any(e.kind == "chat.created" for e in events):
        opening = opening_message((await store.definition(chat_id)).spec)
    out = []
    for event in events:
        data = dict(event.data)
        data["at"] = event.at  # when the journal kept it (wall clock)
        if event.kind == "chat.created" and opening is not None:
            data["opening"] = opening  # a group chat's first message is not a turn of its own
        if event.kind == "turn" and data.get("number") in turns:
            turn = turns[data["number"]]
            data["message"] = turn.message
            data["tokens"] = turn.usage.total_tokens
            data["cost"] = turn.usage.cost
        if event.kind == "input.asked":
            prompt = prompts.get(str(data.get("token")), "")
            data["approval"] = prompt.startswith(APPROVAL_PREFIX)
            data["prompt"] = prompt.removeprefix(APPROVAL_PREFIX)
        out.append({"id": event.id, "event": event.kind, "data": json.dumps(data), "at": event.at})
    return out


def _token_item(tokens: TokenBuffer, start: int) -> dict[str, Any]:
    """The text streamed since part `start`, as one `token` event without an id."""
    data = {"turn": tokens.turn, "speaker": tokens.speaker, "text": "".join(tokens.parts[start:])}
    return {"id": None, "event": "token", "data": json.dumps(data)}


async def feed(
    runner: ChatRunner, chat_id: str, after: int, *, buffer: int
) -> AsyncIterator[dict[str, Any]]:
    """The chat's events after `after`, live, until the chat ends or this reader falls behind
    by more than `buffer` events (then a `cutoff` event names the resume point)."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=buffer)
    store, signal = runner.store, runner.signal(chat_id)

    async def pump() -> None:
        last, seen = after, -1
        generation, streamed = -1, 0  # the token buffer's turn and how many parts were sent
        while True:
            wake = signal.current()
            if signal.version != seen:  # the journal changed (or was never read)
                seen = signal.version
                # Shielded: a reader that leaves must not cancel a store call mid-transaction.
                events = await asyncio.shield(store.events(chat_id, after=last, limit=500))
                if events:
                    for item in await asyncio.shield(_enrich(runner, chat_id, events)):
                        if queue.full():
                            await queue.put(CUTOFF)  # room is freed as the consumer reads
                            return
                        queue.put_nowait(item)
                        last = item["id"]
                    seen = -1  # read on: there may be more than one page
                    continue
                summary = await asyncio.shield(store.summary(chat_id))
                if summary.status in (ChatStatus.FINISHED, ChatStatus.FAILED):
                    # Its last events may have landed between the read above and the summary.
                    if await asyncio.shield(store.events(chat_id, after=last, limit=1)):
                        seen = -1
                        continue
                    await queue.put(None)
                    return
            tokens = runner.tokens(chat_id)
            if tokens is not None:
                if tokens.generation != generation:
                    generation, streamed = tokens.generation, 0
                if len(tokens.parts) > streamed:
                    if queue.full():
                        await queue.put(CUTOFF)
                        return
                    queue.put_nowait(_token_item(tokens, streamed))
                    streamed = len(tokens.parts)
                    continue
            await wake.wait()

    task = asyncio.get_running_loop().create_task(pump())
    last_sent = after
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if item is CUTOFF:
                yield {"event": "cutoff", "data": json.dumps({"resume_after": last_sent})}
                return
            if item.get("id") is None:  # a token: ephemeral, no id, no resume point
                yield {"event": item["event"], "data": item["data"]}
                continue
            last_sent = item["id"]
            yield {"id": str(item["id"]), "event": item["event"], "data": item["data"]}
    finally:
        task.cancel()
