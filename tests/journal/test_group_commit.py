"""`GroupCommitStore` over each store: concurrent writes share commits, concurrent reads of
chats resumed together share one `load_many`, and every request it accepted is answered."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from moot.journal import (
    ChatDefinition,
    ChatNotFoundError,
    GroupCommitStore,
    InMemoryChatStore,
    StoreUnavailableError,
    Turn,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from journal_helpers import Backend

    from moot.journal._store import BatchOp


def definition(chat_id: str) -> ChatDefinition:
    return ChatDefinition(chat_id=chat_id, participants=("a", "b"), policy="round_robin")


def turn(number: int, speaker: str = "a") -> Turn:
    return Turn(number=number, speaker=speaker, message={"content": f"{speaker} {number}"})


async def test_chats_resumed_together_are_read_in_one_batch(backend: Backend) -> None:
    inner = await backend.open()
    async with GroupCommitStore(inner) as store:
        ids = [f"c{i}" for i in range(50)]
        leases = await asyncio.gather(*(store.start_chat(definition(i), "me", ttl=30) for i in ids))
        for number in (1, 2, 3):
            await asyncio.gather(
                *(
                    store.append_turn(i, turn(number, i), lease=lease)
                    for i, lease in zip(ids, leases, strict=True)
                )
            )
        assert store.batches < 50 * 4  # the writes shared commits
        reads = await asyncio.gather(
            *(store.turns(i) for i in [*ids, "missing"]), return_exceptions=True
        )
        assert store.read_batches == 1
        summaries, definitions = await asyncio.gather(
            asyncio.gather(*(store.summary(i) for i in ids)),
            asyncio.gather(*(store.definition(i) for i in ids)),
        )
        assert store.read_batches == 2  # both kinds in one batch, one read of each
        assert [s.turns for s in summaries] == [3] * 50
        assert [d.chat_id for d in definitions] == ids
        assert [[t.number for t in r] for r in reads[:-1] if isinstance(r, list)] == [
            [1, 2, 3]
        ] * 50
        assert reads[:-1] == [await inner.turns(i) for i in ids]
        assert isinstance(reads[-1], ChatNotFoundError)  # the missing chat fails alone
        assert [t.number for t in await store.turns("c7", after=1)] == [2, 3]


class _HeldStore(InMemoryChatStore):
    """A memory store whose group commits wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.seen: list[int] = []

    async def write_batch(self, ops: Sequence[BatchOp]) -> list[Any]:
        self.seen.append(len(ops))
        self.entered.set()
        await self.gate.wait()
        return await super().write_batch(ops)


async def test_a_cancelled_writer_leaves_the_others_of_its_commit_alone() -> None:
    inner = _HeldStore()
    async with GroupCommitStore(inner) as store:
        for chat_id in ("a", "b", "c"):
            await inner.create_chat(definition(chat_id))
        first = asyncio.create_task(store.append_turn("a", turn(1)))
        await inner.entered.wait()  # the first commit holds the writer
        waiting = {i: asyncio.create_task(store.append_turn(i, turn(1))) for i in ("b", "c")}
        await asyncio.sleep(0)
        waiting["b"].cancel()
        inner.gate.set()
        await first
        await waiting["c"]
        with pytest.raises(asyncio.CancelledError):
            await waiting["b"]
        assert inner.seen == [1, 2]  # b and c shared the second commit
        assert [t.number for t in await store.turns("c")] == [1]


async def test_past_max_pending_a_writer_waits_for_room_and_closing_answers_everyone() -> None:
    inner = _HeldStore()
    store = GroupCommitStore(inner, max_batch=1, max_pending=1)
    await store.open()
    for chat_id in ("a", "b", "c"):
        await inner.create_chat(definition(chat_id))
    tasks = [asyncio.create_task(store.append_turn(i, turn(1))) for i in ("a", "b", "c")]
    await inner.entered.wait()  # "a" is being committed, "b" waits in the lane, "c" for room
    await asyncio.sleep(0)
    assert not any(task.done() for task in tasks)
    await store.aclose()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailableError) for r in results)
    with pytest.raises(StoreUnavailableError):
        await store.append_turn("a", turn(1))
