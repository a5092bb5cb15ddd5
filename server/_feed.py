"""A chat's events for one reader: read from the journal into a bounded buffer.

The journal is the source: a chat only wakes its readers (never waits for them), and each
reader pulls from the journal at its own pace. When a reader's buffer is full, the reader is cut
off with its resume point (the last event id it was given); it reconnects with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from moot.journal import ChatStatus

from ._runner import APPROVAL_PREFIX

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from moot.journal import JournalEvent

    from ._runner import ChatRunner

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
    out = []
    for event in events:
        data = dict(event.data)
        data["at"] = event.at  # when the journal kept it (wall clock)
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


async def feed(
    runner: ChatRunner, chat_id: str, after: int, *, buffer: int
) -> AsyncIterator[dict[str, Any]]:
    """The chat's events after `after`, live, until the chat ends or this reader falls behind
    by more than `buffer` events (then a `cutoff` event names the resume point)."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=buffer)
    store, signal = runner.store, runner.signal(chat_id)

    async def pump() -> None:
        last = after
        while True:
            wake = signal.current()
            # Shielded: a reader that leaves must not cancel a store call mid-transaction.
            events = await asyncio.shield(store.events(chat_id, after=last, limit=500))
            if events:
                for item in await asyncio.shield(_enrich(runner, chat_id, events)):
                    if queue.full():
                        await queue.put(CUTOFF)  # room is freed as the consumer reads
                        return
                    queue.put_nowait(item)
                    last = item["id"]
                continue
            summary = await asyncio.shield(store.summary(chat_id))
            if summary.status in (ChatStatus.FINISHED, ChatStatus.FAILED):
                # Its last events may have landed between the read above and the summary.
                if await asyncio.shield(store.events(chat_id, after=last, limit=1)):
                    continue
                await queue.put(None)
                return
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
            last_sent = item["id"]
            yield {"id": str(item["id"]), "event": item["event"], "data": item["data"]}
    finally:
        task.cancel()
