"""One contract, three stores: in memory, a real SQLite file and a real Postgres server."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

import pytest

from moot.journal import (
    ChatDefinition,
    ChatExistsError,
    ChatFinishedError,
    ChatLease,
    ChatNotFoundError,
    ChatStatus,
    ChatStore,
    CodeRun,
    Decision,
    FileChange,
    InputAlreadyAnsweredError,
    InvalidRecordError,
    JournalConfigError,
    LeaseHeldError,
    LeaseLostError,
    RecordTooLargeError,
    StoreLimits,
    StoreWriteError,
    Termination,
    ToolCall,
    ToolResult,
    Turn,
    TurnOrderError,
    UnknownInputTokenError,
    Usage,
)

if TYPE_CHECKING:
    from journal_helpers import Backend, FakeClock

    from moot.journal import JournalEvent


def definition(chat_id: str = "c1") -> ChatDefinition:
    return ChatDefinition(
        chat_id=chat_id,
        participants=("alice", "bob"),
        policy="round_robin",
        limits={"max_turns": 12},
        spec={"message": "hello"},
    )


def turn(number: int, speaker: str = "alice", **extra: object) -> Turn:
    return Turn(
        number=number,
        speaker=speaker,
        message={"role": "assistant", "name": speaker, "content": f"turn {number}"},
        usage=Usage(prompt_tokens=10, completion_tokens=5, cost=0.25, model="m"),
        **extra,  # type: ignore[arg-type]
    )


async def test_a_chat_definition_round_trips(store: ChatStore) -> None:
    await store.create_chat(definition())
    assert await store.definition("c1") == definition()
    summary = await store.summary("c1")
    assert (summary.status, summary.turns, summary.tokens) == (ChatStatus.RUNNING, 0, 0)


async def test_each_turn_is_readable_by_another_connection_as_soon_as_it_is_appended(
    backend: Backend,
) -> None:
    writer, reader = await backend.open(), await backend.open()
    await writer.create_chat(definition())
    full = Turn(
        number=1,
        speaker="alice",
        message={"role": "assistant", "content": "run it", "tool_calls": [{"id": "t1"}]},
        decision=Decision(policy="auto", chosen="alice", candidates=("alice", "bob"), reason="x"),
        usage=Usage(prompt_tokens=100, completion_tokens=20, cost=0.5, model="gpt"),
        tool_calls=(ToolCall(id="t1", name="add", arguments='{"a": 1}'),),
        tool_results=(ToolResult(call_id="t1", content="2"),),
        code_runs=(CodeRun(language="python", code="print(1)", exit_code=0, output="1\n"),),
        files=(FileChange(path="out/a.txt", data=b"hello"),),
        termination=None,
    )
    await writer.append_turn("c1", full)
    assert await reader.turns("c1") == [full]
    for number in range(2, 5):
        await writer.append_turn("c1", turn(number))
        assert [t.number for t in await reader.turns("c1")] == list(range(1, number + 1))
    assert [t.number for t in await reader.turns("c1", after=2)] == [3, 4]
    summary = await reader.summary("c1")
    assert (summary.turns, summary.tokens, summary.cost) == (4, 120 + 3 * 15, 0.5 + 3 * 0.25)


async def test_a_turn_number_that_is_not_the_next_one_is_refused(store: ChatStore) -> None:
    await store.create_chat(definition())
    with pytest.raises(TurnOrderError) as caught:
        await store.append_turn("c1", turn(2))
    assert (caught.value.expected, caught.value.got) == (1, 2)
    await store.append_turn("c1", turn(1))
    with pytest.raises(TurnOrderError):
        await store.append_turn("c1", turn(1))  # a completed turn is never journaled twice
    assert len(await store.turns("c1")) == 1


async def test_a_failure_injected_mid_turn_leaves_no_half_turn(backend: Backend) -> None:
    store = await backend.open()
    await store.create_chat(definition())
    await store.append_turn("c1", turn(1))
    before = await store.statistics()
    events_before = await store.events("c1")
    await backend.sabotage()
    doomed = turn(2, "saboteur", files=(FileChange(path="new.bin", data=b"fresh bytes"),))
    with pytest.raises(StoreWriteError):
        await store.append_turn("c1", doomed)
    assert [t.number for t in await store.turns("c1")] == [1]
    assert await store.events("c1") == events_before
    after = await store.statistics()
    assert (after.turns, after.blobs, after.events) == (before.turns, before.blobs, before.events)
    summary = await store.summary("c1")
    assert (summary.turns, summary.tokens) == (1, 15)
    await store.append_turn("c1", turn(2, "bob"))  # the chat goes on from where it was
    assert [t.number for t in await store.turns("c1")] == [1, 2]


async def test_file_contents_are_stored_once_and_the_workspace_replays(store: ChatStore) -> None:
    await store.create_chat(definition("c1"))
    await store.create_chat(definition("c2"))
    same = FileChange(path="a.txt", data=b"same bytes")
    await store.append_turn("c1", turn(1, files=(same, FileChange(path="b.txt", data=b"b"))))
    await store.append_turn("c1", turn(2, files=(same, FileChange(path="b.txt", data=None))))
    await store.append_turn("c2", turn(1, files=(FileChange(path="x/a.txt", data=b"same bytes"),)))
    stats = await store.statistics()
    assert (stats.blobs, stats.blob_bytes) == (2, len(b"same bytes") + 1)
    assert await store.workspace("c1") == {"a.txt": b"same bytes"}
    assert await store.workspace("c1", upto=1) == {"a.txt": b"same bytes", "b.txt": b"b"}
    assert await store.blob(hashlib.sha256(b"b").hexdigest()) == b"b"


@pytest.mark.parametrize(
    ("files", "message", "what"),
    [
        ((FileChange(path="big", data=b"x" * 101),), "hi", "file"),
        (tuple(FileChange(path=f"f{i}", data=bytes([i]) * 100) for i in range(5)), "hi", "turn"),
        ((), "y" * 1100, "row"),
    ],
)
async def test_past_a_size_cap_the_turn_is_refused_and_nothing_is_written(
    backend: Backend, files: tuple[FileChange, ...], message: str, what: str
) -> None:
    limits = StoreLimits(max_file_bytes=100, max_turn_bytes=450, max_row_bytes=1000)
    store = await backend.open(limits=limits)
    await store.create_chat(definition())
    big = Turn(number=1, speaker="alice", message={"content": message}, files=files)
    with pytest.raises(RecordTooLargeError) as caught:
        await store.append_turn("c1", big)
    assert caught.value.what == what
    assert caught.value.size > caught.value.limit
    assert await store.turns("c1") == []
    assert (await store.statistics()).blobs == 0


async def test_records_that_cannot_be_journaled_are_refused(store: ChatStore) -> None:
    await store.create_chat(definition())
    with pytest.raises(InvalidRecordError, match="JSON"):
        await store.append_turn("c1", Turn(number=1, speaker="a", message={"x": object()}))
    for path in ("../escape", "/etc/passwd", ""):
        with pytest.raises(InvalidRecordError, match="path"):
            await store.append_turn("c1", turn(1, files=(FileChange(path=path, data=b"x"),)))
    with pytest.raises(InvalidRecordError):
        await store.create_chat(ChatDefinition(chat_id="", participants=(), policy="p"))


async def test_unknown_and_duplicate_chats_get_typed_errors(store: ChatStore) -> None:
    await store.create_chat(definition())
    with pytest.raises(ChatExistsError):
        await store.create_chat(definition())
    for call in (
        store.definition("nope"),
        store.summary("nope"),
        store.turns("nope"),
        store.events("nope"),
        store.inputs("nope"),
        store.append_turn("nope", turn(1)),
        store.acquire_lease("nope", "me", ttl=5),
    ):
        with pytest.raises(ChatNotFoundError):
            await call


async def test_a_terminating_turn_finishes_the_chat_and_it_takes_no_more(store: ChatStore) -> None:
    await store.create_chat(definition())
    await store.append_turn("c1", turn(1, termination=Termination(reason="max_turns")))
    summary = await store.summary("c1")
    assert summary.status is ChatStatus.FINISHED
    assert summary.termination == Termination(reason="max_turns")
    with pytest.raises(ChatFinishedError):
        await store.append_turn("c1", turn(2))
    await store.create_chat(definition("c2"))
    await store.set_status("c2", ChatStatus.FAILED, termination=Termination(reason="error"))
    assert (await store.summary("c2")).status is ChatStatus.FAILED


async def test_event_ids_grow_by_one_and_resuming_from_an_id_has_no_gap_or_repeat(
    store: ChatStore,
) -> None:
    await store.create_chat(definition())
    ids = await asyncio.gather(*(store.append_event("c1", "token", {"i": i}) for i in range(30)))
    await store.append_turn("c1", turn(1))
    all_events = await store.events("c1")
    assert [e.id for e in all_events] == list(range(1, len(all_events) + 1))
    assert sorted(ids) == list(range(2, 32))  # 1 is chat.created
    assert all_events[-1].kind == "turn"
    assert all_events[-1].data == {"number": 1, "speaker": "alice"}
    seen: list[JournalEvent] = []
    last = 0
    while page := await store.events("c1", after=last, limit=7):
        seen += page
        last = page[-1].id
    assert seen == all_events


async def test_chats_are_listed_newest_first_in_pages(backend: Backend, clock: FakeClock) -> None:
    store = await backend.open(clock=clock)
    for i in range(25):
        clock.advance(1)
        await store.create_chat(definition(f"chat{i:02d}"))
        if i % 5 == 0:
            await store.append_turn(f"chat{i:02d}", turn(1, termination=Termination(reason="done")))
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await store.list_chats(limit=10, cursor=cursor)
        pages.append([c.chat_id for c in page.chats])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [c for p in pages for c in p] == [f"chat{i:02d}" for i in reversed(range(25))]
    finished = await store.list_chats(status=ChatStatus.FINISHED, limit=100)
    assert [c.chat_id for c in finished.chats] == [f"chat{i:02d}" for i in (20, 15, 10, 5, 0)]
    assert all(c.turns == 1 and c.tokens == 15 for c in finished.chats)
    assert finished.next_cursor is None


async def test_a_question_is_answered_exactly_once_under_concurrent_answers(
    backend: Backend,
) -> None:
    first, second = await backend.open(), await backend.open()
    await first.create_chat(definition())
    await first.append_turn("c1", turn(1))
    question = await first.ask_input("c1", "Approve?")
    assert question.turn == 2
    assert (await second.summary("c1")).status is ChatStatus.WAITING
    answers = [(first if i % 2 else second).answer_input(question.token, f"a{i}") for i in range(8)]
    results = await asyncio.gather(*answers, return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, InputAlreadyAnsweredError) for r in results if r not in winners)
    stored = await second.inputs("c1")
    assert [(q.token, q.answer) for q in stored] == [(question.token, winners[0].answer)]
    assert (await first.summary("c1")).status is ChatStatus.RUNNING
    with pytest.raises(UnknownInputTokenError):
        await first.answer_input("no-such-token", "x")
    kinds = [e.kind for e in await first.events("c1")]
    assert kinds.count("input.asked") == 1
    assert kinds.count("input.answered") == 1


async def test_two_acquirers_on_two_connections_exactly_one_wins(backend: Backend) -> None:
    first, second = await backend.open(), await backend.open()
    await first.create_chat(definition())
    results = await asyncio.gather(
        *(s.acquire_lease("c1", f"worker{i}", ttl=30) for i, s in enumerate([first, second] * 3)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, ChatLease)]
    assert len(won) == 1
    assert all(isinstance(r, LeaseHeldError) for r in results if r not in won)
    held = next(r for r in results if isinstance(r, LeaseHeldError))
    assert held.owner == won[0].owner


async def test_an_expired_lease_is_taken_over_and_its_old_holder_can_write_no_more(
    backend: Backend, clock: FakeClock
) -> None:
    first, second = await backend.open(clock=clock), await backend.open(clock=clock)
    await first.create_chat(definition())
    old = await first.acquire_lease("c1", "crashed", ttl=10)
    await first.append_turn("c1", turn(1), lease=old)
    clock.advance(5)
    old = await first.renew_lease(old, ttl=10)
    clock.advance(9)
    with pytest.raises(LeaseHeldError):
        await second.acquire_lease("c1", "survivor", ttl=10)
    clock.advance(2)
    new = await second.acquire_lease("c1", "survivor", ttl=10)
    assert new.fence == old.fence + 1
    with pytest.raises(LeaseLostError):
        await first.append_turn("c1", turn(2), lease=old)
    with pytest.raises(LeaseLostError):
        await first.renew_lease(old, ttl=10)
    with pytest.raises(LeaseLostError):
        await first.ask_input("c1", "?", lease=old)
    await second.append_turn("c1", turn(2), lease=new)
    await second.release_lease(new)
    await first.release_lease(old)  # a lost lease releases nothing
    again = await first.acquire_lease("c1", "next", ttl=10)
    assert again.fence == new.fence + 1
    assert [t.number for t in await second.turns("c1")] == [1, 2]


async def test_a_page_limit_below_one_or_a_foreign_cursor_is_refused(store: ChatStore) -> None:
    with pytest.raises(JournalConfigError, match="at least one"):
        await store.list_chats(limit=0)
    with pytest.raises(JournalConfigError, match="cursor"):
        await store.list_chats(cursor="not-a-cursor")


async def test_load_many_reads_each_chats_turns_as_turns_does(store: ChatStore) -> None:
    for chat_id in ("a", "b", "empty"):
        await store.create_chat(definition(chat_id))
    await store.append_turn("a", turn(1, files=(FileChange(path="f.txt", data=b"bytes"),)))
    await store.append_turn("a", turn(2, "bob"))
    await store.append_turn("b", turn(1))
    loaded = await store.load_many(["b", "missing", "a", "empty", "a"])
    assert list(loaded) == ["b", "missing", "a", "empty"]  # asked order, each chat once
    assert loaded["a"] == await store.turns("a")
    assert loaded["b"] == await store.turns("b")
    assert loaded["empty"] == []
    missing = loaded["missing"]
    assert isinstance(missing, ChatNotFoundError)
    assert missing.chat_id == "missing"
    assert await store.load_many([]) == {}


async def test_load_many_reads_more_chats_than_one_query_takes(store: ChatStore) -> None:
    ids = [f"c{i:04d}" for i in range(1201)]  # three chunks of ids
    for chat_id in ids:
        await store.create_chat(definition(chat_id))
        await store.append_turn(chat_id, turn(1, chat_id))
    loaded = await store.load_many(ids)
    assert [turns[0].speaker for turns in loaded.values() if isinstance(turns, list)] == ids


async def test_a_group_commit_answers_each_op_alone_and_renews_leases(store: ChatStore) -> None:
    from moot.journal._store import AppendTurn, ReleaseLease, RenewLease

    leases = {}
    for chat_id in ("a", "b", "c", "d", "e"):  # one op per chat, as chats send them
        await store.create_chat(definition(chat_id))
        leases[chat_id] = await store.acquire_lease(chat_id, "me", ttl=30)
    await store.append_turn("c", turn(1), lease=leases["c"])
    outcome = await store.write_batch(
        [
            AppendTurn("a", turn(1), leases["a"]),
            AppendTurn("b", turn(2), leases["b"]),  # out of order: refused alone
            AppendTurn("c", turn(2, termination=Termination(reason="done")), leases["c"]),
            RenewLease(leases["d"], 60.0),
            ReleaseLease(leases["e"]),
        ]
    )
    assert [outcome[0], outcome[2], outcome[4]] == [None, None, None]
    assert isinstance(outcome[1], TurnOrderError)
    renewed = outcome[3]
    assert isinstance(renewed, ChatLease)
    assert (renewed.token, renewed.fence) == (leases["d"].token, leases["d"].fence)
    assert renewed.expires_at > leases["d"].expires_at
    assert [t.number for t in await store.turns("a")] == [1]
    assert await store.turns("b") == []
    assert (await store.summary("c")).status is ChatStatus.FINISHED
    other = await store.acquire_lease("e", "someone else", ttl=30)  # "e" was released
    assert other.fence == leases["e"].fence + 1
    lost = await store.write_batch([RenewLease(leases["e"], 60.0)])
    assert isinstance(lost[0], LeaseLostError)


async def test_two_turns_of_one_chat_in_one_group_commit_apply_in_order(store: ChatStore) -> None:
    from moot.journal._store import AppendTurn

    await store.create_chat(definition("a"))
    await store.create_chat(definition("b"))
    outcome = await store.write_batch(
        [
            AppendTurn("a", turn(1), None),
            AppendTurn("b", turn(1), None),
            AppendTurn("a", turn(2), None),
        ]
    )
    assert outcome == [None, None, None]
    summary = await store.summary("a")
    assert (summary.turns, summary.tokens, summary.cost) == (2, 30, 0.5)
    assert [e.id for e in await store.events("a")] == [1, 2, 3]


async def test_summaries_and_definitions_read_many_chats_at_once(store: ChatStore) -> None:
    for chat_id in ("a", "b"):
        await store.create_chat(definition(chat_id))
    await store.append_turn("b", turn(1))
    summaries = await store.summaries(["b", "nope", "a"])
    definitions = await store.definitions(["a", "nope", "b", "a"])
    assert list(summaries) == ["b", "nope", "a"]
    assert summaries["a"] == await store.summary("a")
    assert summaries["b"] == await store.summary("b")
    assert list(definitions) == ["a", "nope", "b"]
    assert [definitions["a"], definitions["b"]] == [definition("a"), definition("b")]
    assert isinstance(summaries["nope"], ChatNotFoundError)
    assert isinstance(definitions["nope"], ChatNotFoundError)


async def test_a_group_commit_starts_new_chats_and_leaves_existing_ones_to_resume(
    store: ChatStore,
) -> None:
    from moot.journal._store import ReleaseLease, StartChat

    await store.create_chat(definition("old"))
    held = await store.acquire_lease("old", "me", ttl=30)
    outcome = await store.write_batch(
        [
            StartChat(definition("n1"), "me", 30.0),
            StartChat(definition("old"), "me", 30.0),
            StartChat(definition("n2"), "you", 30.0),
            StartChat(definition("n1"), "you", 30.0),  # the same id twice: the first wins
            ReleaseLease(held),
        ]
    )
    first, existing, second, again, released = outcome
    assert isinstance(first, ChatLease)
    assert isinstance(second, ChatLease)
    assert (first.chat_id, first.owner, first.fence) == ("n1", "me", 1)
    assert (second.chat_id, second.owner, second.fence) == ("n2", "you", 1)
    assert [existing, again, released] == [None, None, None]
    assert await store.definition("n2") == definition("n2")
    assert [e.kind for e in await store.events("n1")] == ["chat.created"]
    await store.append_turn("n1", turn(1), lease=first)  # the lease is the chat's
    with pytest.raises(LeaseHeldError):
        await store.acquire_lease("n2", "someone else", ttl=30)
    taken = await store.acquire_lease("old", "someone else", ttl=30)  # released in the batch
    assert taken.fence == held.fence + 1
