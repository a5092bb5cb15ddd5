"""What only the durable stores promise: schema versions, corrupt rows, reopening, a store that
is unreachable or goes away mid-chat, and choosing a store by URL."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING, Any

import pytest

from moot.journal import (
    SCHEMA_VERSION,
    ChatDefinition,
    ChatStatus,
    CorruptRecordError,
    InMemoryChatStore,
    JournalConfigError,
    MissingDriverError,
    PostgresChatStore,
    SchemaVersionError,
    SqliteChatStore,
    StoreError,
    StoreUnavailableError,
    Turn,
    default_journal_path,
    default_store,
    open_store,
    store_from_url,
)
from moot.journal._sql import MIGRATIONS, POSTGRES_TYPES, SQLITE_TYPES

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from pathlib import Path

    from journal_helpers import Backend
    from pg_helpers import PostgresServer


def definition(chat_id: str) -> ChatDefinition:
    return ChatDefinition(chat_id=chat_id, participants=("a", "b"), policy="round_robin")


def turn(number: int) -> Turn:
    return Turn(number=number, speaker="a", message={"content": f"turn {number}"})


async def _write_version_1_journal(backend: Backend) -> None:
    """A journal as schema version 1 wrote it: no leases, no questions to humans."""
    types = SQLITE_TYPES if backend.kind == "sqlite" else POSTGRES_TYPES
    await backend.raw("CREATE TABLE journal_schema (version INTEGER NOT NULL)")
    for statement in MIGRATIONS[1]:
        await backend.raw(statement.format_map(types))
    await backend.raw("INSERT INTO journal_schema (version) VALUES (1)")
    await backend.raw(
        'INSERT INTO chats VALUES (\'old\', \'{"chat_id":"old","participants":["a"],'
        '"policy":"p","limits":{},"spec":{}}\', \'running\', 1, 3, 0.5, 0, NULL, 1.0, 1.0)'
    )
    await backend.raw(
        'INSERT INTO turns VALUES (\'old\', 1, \'{"number":1,"speaker":"a","message":{},'
        '"decision":null,"usage":{"prompt_tokens":1,"completion_tokens":2,"cost":0.5,'
        '"model":null},"tool_calls":[],"tool_results":[],"code_runs":[],"files":[],'
        '"termination":null}\')'
    )


async def test_an_older_journal_is_migrated_on_open(durable_backend: Backend) -> None:
    await _write_version_1_journal(durable_backend)
    store = await durable_backend.open()
    assert isinstance(store, SqliteChatStore | PostgresChatStore)
    assert await store.schema_version() == SCHEMA_VERSION == 2
    assert [t.usage.total_tokens for t in await store.turns("old")] == [3]
    question = await store.ask_input("old", "go on?")  # version 2's table works
    assert question.turn == 2
    lease = await store.acquire_lease("old", "me", ttl=5)
    await store.append_turn("old", turn(2), lease=lease)


async def test_a_newer_journal_is_refused_with_a_clear_error(durable_backend: Backend) -> None:
    store = await durable_backend.open()
    await store.create_chat(definition("c1"))
    await durable_backend.raw("UPDATE journal_schema SET version = 99")
    with pytest.raises(SchemaVersionError, match="schema version 99") as caught:
        await durable_backend.open()
    assert (caught.value.found, caught.value.supported) == (99, SCHEMA_VERSION)


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("turns", "body", "not json at all"),
        ("turns", "body", '{"foreign": "row"}'),
        ("chats", "definition", '{"chat_id": 7}'),
        ("events", "data", "[1, 2"),
        ("chats", "status", "paused-by-someone-else"),
    ],
)
async def test_a_corrupt_row_fails_its_chat_only(
    durable_backend: Backend, table: str, column: str, value: str
) -> None:
    store = await durable_backend.open()
    for chat_id in ("bad", "good"):
        await store.create_chat(definition(chat_id))
        await store.append_turn(chat_id, turn(1))
    mark = "?" if durable_backend.kind == "sqlite" else "$1"
    await durable_backend.raw(f"UPDATE {table} SET {column} = {mark} WHERE chat_id = 'bad'", value)
    reading: Coroutine[Any, Any, object]
    if column == "status":
        reading = store.summary("bad")
    elif table == "chats":
        reading = store.definition("bad")
    elif table == "events":
        reading = store.events("bad")
    else:
        reading = store.turns("bad")
    with pytest.raises(CorruptRecordError) as caught:
        await reading
    assert caught.value.chat_id == "bad"
    assert [t.number for t in await store.turns("good")] == [1]
    assert (await store.definition("good")).chat_id == "good"
    assert len(await store.events("good")) == 2
    assert (await store.summary("good")).status is ChatStatus.RUNNING


async def test_a_reopened_journal_holds_everything_written(durable_backend: Backend) -> None:
    store = await durable_backend.open()
    await store.create_chat(definition("c1"))
    await store.append_turn("c1", turn(1))
    question = await store.ask_input("c1", "ok?")
    await store.aclose()
    again = await durable_backend.open()
    assert [t.number for t in await again.turns("c1")] == [1]
    assert (await again.inputs("c1"))[0].token == question.token
    assert (await again.summary("c1")).status is ChatStatus.WAITING


async def test_a_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="cannot be opened"):
        await open_store(f"sqlite:///{tmp_path}")  # a folder, not a file
    foreign = tmp_path / "foreign.sqlite3"
    foreign.write_bytes(b"this is not a database, it is a text file" * 100)
    with pytest.raises(StoreUnavailableError):
        await open_store(f"sqlite:///{foreign}")


async def test_an_unreachable_postgres_is_unavailable_before_anything_else() -> None:
    from nats_helpers import free_port

    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/none"
    with pytest.raises(StoreUnavailableError) as caught:
        await open_store(url)
    assert "secret" not in str(caught.value)
    assert "secret" not in caught.value.store


async def test_postgres_stopping_mid_chat_is_a_typed_error_and_the_journal_survives(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    store = PostgresChatStore(postgres_dsn)
    async with store:
        await store.create_chat(definition("c1"))
        await store.append_turn("c1", turn(1))
        await store.append_turn("c1", turn(2))
        postgres_server.stop()
        try:
            with pytest.raises(StoreUnavailableError):
                await store.append_turn("c1", turn(3))
            with pytest.raises(StoreError):
                await store.turns("c1")
        finally:
            postgres_server.start()
    async with PostgresChatStore(postgres_dsn) as after:
        assert [t.number for t in await after.turns("c1")] == [1, 2]
        await after.append_turn("c1", turn(3))  # the chat resumes where it was
        assert (await after.summary("c1")).turns == 3


def test_a_url_picks_the_store() -> None:
    assert isinstance(store_from_url("memory://"), InMemoryChatStore)
    sqlite = store_from_url("sqlite:///relative/j.sqlite3")
    assert isinstance(sqlite, SqliteChatStore)
    assert str(sqlite.path) == "relative/j.sqlite3"
    absolute = store_from_url("sqlite:////abs/j.sqlite3?synchronous=normal")
    assert isinstance(absolute, SqliteChatStore)
    assert str(absolute.path) == "/abs/j.sqlite3"
    postgres = store_from_url("postgresql://u:pw@db.example:5432/moot")
    assert isinstance(postgres, PostgresChatStore)
    assert postgres.name == "postgresql://u:***@db.example:5432/moot"
    for bad in ("redis://x", "sqlite://host/path", "sqlite:///j?synchronous=off", "postgresql://"):
        with pytest.raises(JournalConfigError):
            store_from_url(bad)


async def test_the_default_store_is_a_sqlite_file_under_the_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("MOOT_JOURNAL_URL", raising=False)
    assert default_journal_path() == tmp_path / "moot" / "journal.sqlite3"
    store = await default_store()
    try:
        assert isinstance(store, SqliteChatStore)
        await store.create_chat(definition("c1"))
    finally:
        await store.aclose()
    assert (tmp_path / "moot" / "journal.sqlite3").is_file()
    monkeypatch.setenv("MOOT_JOURNAL_URL", "memory://")
    assert isinstance(await default_store(), InMemoryChatStore)


async def test_a_missing_driver_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "aiosqlite", None)
    with pytest.raises(MissingDriverError, match=r"moot\[durable\]") as caught:
        await open_store(f"sqlite:///{tmp_path / 'j.sqlite3'}")
    assert caught.value.package == "aiosqlite"


async def test_a_work_file_whose_bytes_do_not_match_their_hash_fails_its_chat(
    durable_backend: Backend,
) -> None:
    from moot.journal import FileChange

    store = await durable_backend.open()
    await store.create_chat(definition("c1"))
    changed = Turn(number=1, speaker="a", message={}, files=(FileChange(path="f", data=b"ok"),))
    await store.append_turn("c1", changed)
    await durable_backend.raw("DELETE FROM blobs")
    with pytest.raises(CorruptRecordError, match="does not match") as caught:
        await store.workspace("c1")
    assert caught.value.chat_id == "c1"


async def test_sqlite_calls_cancelled_at_every_point_leave_the_store_usable(
    tmp_path: Path,
) -> None:
    """A chat cancelled while its journal call runs (a deadline, a stop) must not leave the
    shared connection inside a transaction that fails every later call."""
    store = await open_store(f"sqlite:///{tmp_path / 'j.sqlite3'}")
    try:
        await store.create_chat(definition("c1"))
        for step in range(40):
            task = asyncio.ensure_future(store.append_turn("c1", turn(step + 1)))
            for _ in range(step % 8):
                await asyncio.sleep(0)  # cancel it at a different point each time
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await task
            numbers = [t.number for t in await store.turns("c1")]
            if numbers[-1:] != [step + 1]:  # the cancelled write did not land: write it now
                await store.append_turn("c1", turn(step + 1))
        assert [t.number for t in await store.turns("c1")] == list(range(1, 41))
    finally:
        await store.aclose()


async def test_load_many_fails_only_the_chat_with_a_corrupt_row(durable_backend: Backend) -> None:
    store = await durable_backend.open()
    for chat_id in ("bad", "good"):
        await store.create_chat(definition(chat_id))
        await store.append_turn(chat_id, turn(1))
    mark = "?" if durable_backend.kind == "sqlite" else "$1"
    await durable_backend.raw(f"UPDATE turns SET body = {mark} WHERE chat_id = 'bad'", "[1, 2")
    loaded = await store.load_many(["bad", "good"])
    bad = loaded["bad"]
    assert isinstance(bad, CorruptRecordError)
    assert bad.chat_id == "bad"
    assert loaded["good"] == await store.turns("good")
