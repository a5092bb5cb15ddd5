"""What the SQLite and Postgres stores share: the schema, its migrations, and every operation
written once in portable SQL over a three-method transaction (`SqlTx`).

Each operation is one transaction that first locks the chat's row (Postgres `FOR UPDATE`,
SQLite `BEGIN IMMEDIATE`), so turn numbers, event ids and leases never race.
"""

from __future__ import annotations

import abc
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from ._errors import (
    ChatExistsError,
    ChatFinishedError,
    ChatNotFoundError,
    CorruptRecordError,
    InputAlreadyAnsweredError,
    JournalError,
    LeaseHeldError,
    LeaseLostError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
    StoreWriteError,
    TurnOrderError,
    UnknownInputTokenError,
)
from ._records import (
    ChatLease,
    ChatPage,
    ChatStatus,
    ChatSummary,
    JournalEvent,
    PendingInput,
    StoreStatistics,
)
from ._rows import (
    check_row_size,
    decode_data,
    decode_definition,
    decode_termination,
    decode_turn_row,
    encode_data,
    encode_definition,
    encode_termination,
    prepare_turn,
    rebuild_turn,
    turn_event_rows,
)
from ._store import (
    SCHEMA_VERSION,
    TERMINAL,
    AcquireLease,
    AppendTurn,
    ChatStore,
    ReleaseLease,
    StartChat,
    check_page_limit,
    decode_cursor,
    encode_cursor,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager

    from ._records import ChatDefinition, StoreLimits, Termination, Turn
    from ._rows import PreparedTurn, TurnRow
    from ._store import BatchOp

Row: TypeAlias = "Sequence[Any]"

# Each schema version's statements; {INT}, {BIGINT}, {REAL}, {BLOB} are the dialect's types.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE chats (chat_id TEXT PRIMARY KEY, definition TEXT NOT NULL,"
        " status TEXT NOT NULL, turns {INT} NOT NULL, tokens {BIGINT} NOT NULL,"
        " cost {REAL} NOT NULL, last_event {BIGINT} NOT NULL, termination TEXT,"
        " created_at {REAL} NOT NULL, updated_at {REAL} NOT NULL)",
        "CREATE INDEX chats_by_created ON chats (created_at, chat_id)",
        "CREATE TABLE turns (chat_id TEXT NOT NULL, number {INT} NOT NULL, body TEXT NOT NULL,"
        " PRIMARY KEY (chat_id, number))",
        "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data {BLOB} NOT NULL)",
        "CREATE TABLE events (chat_id TEXT NOT NULL, id {BIGINT} NOT NULL, kind TEXT NOT NULL,"
        " data TEXT NOT NULL, at {REAL} NOT NULL, PRIMARY KEY (chat_id, id))",
    ),
    # 2: leases and questions to humans.
    2: (
        "CREATE TABLE leases (chat_id TEXT PRIMARY KEY, owner TEXT NOT NULL, token TEXT NOT NULL,"
        " fence {BIGINT} NOT NULL, expires_at {REAL} NOT NULL)",
        "CREATE TABLE inputs (token TEXT PRIMARY KEY, chat_id TEXT NOT NULL, turn {INT} NOT NULL,"
        " prompt TEXT NOT NULL, asked_at {REAL} NOT NULL, answer TEXT, answered_at {REAL})",
        "CREATE INDEX inputs_by_chat ON inputs (chat_id, asked_at)",
    ),
}

SQLITE_TYPES = {"INT": "INTEGER", "BIGINT": "INTEGER", "REAL": "REAL", "BLOB": "BLOB"}
POSTGRES_TYPES = {"INT": "INTEGER", "BIGINT": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"}

_CHUNK = 500  # ids per IN (...) list: under SQLite's oldest limit of 999 variables

_SUMMARY = "chat_id, status, turns, tokens, cost, created_at, updated_at, termination"


class SqlTx(Protocol):
    """One open transaction; statements use `?` placeholders."""

    async def execute(self, sql: str, *args: Any) -> None:
        """Run a statement (use `fetch` with RETURNING to see what it changed)."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run a query; its rows."""
        ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row of arguments (one trip where the driver can)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialect:
    """What differs between SQLite and Postgres in our SQL."""

    types: Mapping[str, str]
    for_update: str  # appended to the SELECT that locks a chat's row
    octets: str  # a format for "the byte length of column {}"


class SqlChatStore(ChatStore, abc.ABC):
    """A `ChatStore` over SQL; subclasses connect, open transactions and map driver errors."""

    dialect: Dialect

    def __init__(
        self, *, limits: StoreLimits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(limits=limits)
        self._clock = clock

    @abc.abstractmethod
    def _transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[SqlTx]:
        """A transaction; driver errors inside come out as `StoreError`s, mapped in one place."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The store's URL without a password, for errors."""

    @property
    @abc.abstractmethod
    def _where(self) -> str:
        """The journal as errors name it: "The SQLite journal at /path"."""

    def _not_open(self) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"{self._where} is not open (use `async with store`).", store=self.name
        )

    def _refused(self, exc: BaseException, *, write: bool) -> StoreError:
        """A driver error that is neither a lost store nor one of ours: a refused write (none of
        it kept) or a failed read."""
        if write:
            return StoreWriteError(
                f"{self._where} refused a write ({exc}); nothing of it was kept.", store=self.name
            )
        return StoreError(f"{self._where} failed a read: {exc}.", store=self.name)

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`column` is one of `values` (at most `_CHUNK` of them): a condition and its args."""
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    # -- schema -------------------------------------------------------------------------------

    async def _migrate(self, tx: SqlTx, *, target: int = SCHEMA_VERSION) -> None:
        """Bring the schema up to `target` inside `tx` (the caller holds the migration lock).

        Raises:
            SchemaVersionError: the journal's version is above what this moot knows.
        """
        await tx.execute("CREATE TABLE IF NOT EXISTS journal_schema (version INTEGER NOT NULL)")
        rows = await tx.fetch("SELECT MAX(version) FROM journal_schema")
        found = int(rows[0][0] or 0)
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The journal at {self.name} has schema version {found}; this moot reads up to"
                f" {SCHEMA_VERSION}. Upgrade moot, or use another store.",
                store=self.name,
                found=found,
                supported=SCHEMA_VERSION,
            )
        for version in range(found + 1, target + 1):
            for statement in MIGRATIONS[version]:
                await tx.execute(statement.format_map(self.dialect.types))
        if target > found:
            await tx.execute("DELETE FROM journal_schema")
            await tx.execute("INSERT INTO journal_schema (version) VALUES (?)", target)

    async def schema_version(self) -> int:
        """The journal's schema version (what `open` migrated it to)."""
        async with self._transaction(write=False) as tx:
            rows = await tx.fetch("SELECT MAX(version) FROM journal_schema")
        return int(rows[0][0] or 0)

    # -- shared steps -------------------------------------------------------------------------

    async def _lock_chat(self, tx: SqlTx, chat_id: str) -> tuple[ChatStatus, int, int]:
        rows = await tx.fetch(
            "SELECT status, turns, last_event FROM chats WHERE chat_id = ?"
            + self.dialect.for_update,
            chat_id,
        )
        if not rows:
            raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
        status, turns, last_event = rows[0]
        return self._status(status, chat_id), int(turns), int(last_event)

    def _status(self, value: Any, chat_id: str) -> ChatStatus:
        try:
            return ChatStatus(value)
        except ValueError:
            raise CorruptRecordError(
                f"Chat {chat_id!r} has an unknown status {value!r}.",
                chat_id=chat_id,
                record="status",
            ) from None

    async def _writable(
        self, tx: SqlTx, chat_id: str, lease: ChatLease | None
    ) -> tuple[ChatStatus, int, int]:
        status, turns, last_event = await self._lock_chat(tx, chat_id)
        if status in TERMINAL:
            raise ChatFinishedError(f"Chat {chat_id!r} has {status} already.", chat_id=chat_id)
        if lease is not None:
            rows = await tx.fetch("SELECT token, expires_at FROM leases WHERE chat_id = ?", chat_id)
            if not rows or rows[0][0] != lease.token or float(rows[0][1]) <= self._clock():
                raise LeaseLostError(
                    f"The lease of {lease.owner!r} on chat {chat_id!r} expired or was taken over.",
                    chat_id=chat_id,
                )
        return status, turns, last_event

    async def _writable_turn(
        self, tx: SqlTx, chat_id: str, lease: ChatLease | None
    ) -> tuple[ChatStatus, int, int]:
        """`_writable` in one statement (the chat's row, locked, and its lease): the hot path."""
        if lease is None:
            return await self._writable(tx, chat_id, None)
        rows = await tx.fetch(
            "SELECT chats.status, chats.turns, chats.last_event, leases.token, leases.expires_at"
            " FROM chats LEFT JOIN leases ON leases.chat_id = chats.chat_id"
            " WHERE chats.chat_id = ?"
            + (" FOR UPDATE OF chats" if self.dialect.for_update else ""),
            chat_id,
        )
        if not rows:
            raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
        raw_status, turns, last_event, token, expires_at = rows[0]
        status = self._status(raw_status, chat_id)
        if status in TERMINAL:
            raise ChatFinishedError(f"Chat {chat_id!r} has {status} already.", chat_id=chat_id)
        if token != lease.token or expires_at is None or float(expires_at) <= self._clock():
            raise LeaseLostError(
                f"The lease of {lease.owner!r} on chat {chat_id!r} expired or was taken over.",
                chat_id=chat_id,
            )
        return status, int(turns), int(last_event)

    async def _add_events(
        self,
        tx: SqlTx,
        chat_id: str,
        last_event: int,
        events: Sequence[tuple[str, str]],
        *,
        chat_updated: bool = False,
    ) -> int:
        """Append events after `last_event` in one statement, and move the chat's counter
        (unless the caller's own UPDATE of the chat sets `last_event` and `updated_at`)."""
        now = self._clock()
        rows = ", ".join("(?, ?, ?, ?, ?)" for _ in events)
        args: list[Any] = []
        for offset, (kind, data) in enumerate(events, start=1):
            args += [chat_id, last_event + offset, kind, data, now]
        await tx.execute(f"INSERT INTO events (chat_id, id, kind, data, at) VALUES {rows}", *args)
        last = last_event + len(events)
        if not chat_updated:
            await tx.execute(
                "UPDATE chats SET last_event = ?, updated_at = ? WHERE chat_id = ?",
                last,
                now,
                chat_id,
            )
        return last

    def _event(self, kind: str, data: Mapping[str, Any]) -> tuple[str, str]:
        return kind, encode_data(data, "event", self.limits)

    # -- chats --------------------------------------------------------------------------------

    async def create_chat(self, definition: ChatDefinition) -> None:
        text = encode_definition(definition, self.limits)
        chat_id = definition.chat_id
        async with self._transaction() as tx:
            if await tx.fetch("SELECT 1 FROM chats WHERE chat_id = ?", chat_id):
                raise ChatExistsError(f"Chat {chat_id!r} is journaled already.", chat_id=chat_id)
            await self._insert_chat(tx, chat_id, text)

    async def _insert_chat(self, tx: SqlTx, chat_id: str, text: str) -> None:
        now = self._clock()
        await tx.execute(
            "INSERT INTO chats (chat_id, definition, status, turns, tokens, cost, last_event,"
            " created_at, updated_at) VALUES (?, ?, ?, 0, 0, 0.0, 0, ?, ?)",
            chat_id,
            text,
            ChatStatus.RUNNING.value,
            now,
            now,
        )
        await self._add_events(tx, chat_id, 0, [self._event("chat.created", {"status": "running"})])

    async def definition(self, chat_id: str) -> ChatDefinition:
        async with self._transaction(write=False) as tx:
            rows = await tx.fetch("SELECT definition FROM chats WHERE chat_id = ?", chat_id)
        if not rows:
            raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
        return decode_definition(rows[0][0], chat_id)

    def _summary(self, row: Row) -> ChatSummary:
        chat_id = str(row[0])
        return ChatSummary(
            chat_id=chat_id,
            status=self._status(row[1], chat_id),
            turns=int(row[2]),
            tokens=int(row[3]),
            cost=float(row[4]),
            created_at=float(row[5]),
            updated_at=float(row[6]),
            termination=decode_termination(row[7], chat_id),
        )

    async def summary(self, chat_id: str) -> ChatSummary:
        async with self._transaction(write=False) as tx:
            rows = await tx.fetch(f"SELECT {_SUMMARY} FROM chats WHERE chat_id = ?", chat_id)
        if not rows:
            raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
        return self._summary(rows[0])

    async def summaries(self, chat_ids: Sequence[str]) -> dict[str, ChatSummary | JournalError]:
        rows = await self._rows_of_chats(_SUMMARY, chat_ids)
        found: dict[str, ChatSummary | JournalError] = {}
        for chat_id in dict.fromkeys(chat_ids):
            row = rows.get(chat_id)
            try:
                if row is None:
                    raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
                found[chat_id] = self._summary(row)
            except (ChatNotFoundError, CorruptRecordError) as exc:
                found[chat_id] = exc
        return found

    async def definitions(
        self, chat_ids: Sequence[str]
    ) -> dict[str, ChatDefinition | JournalError]:
        rows = await self._rows_of_chats("chat_id, definition", chat_ids)
        found: dict[str, ChatDefinition | JournalError] = {}
        for chat_id in dict.fromkeys(chat_ids):
            row = rows.get(chat_id)
            try:
                if row is None:
                    raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
                found[chat_id] = decode_definition(row[1], chat_id)
            except (ChatNotFoundError, CorruptRecordError) as exc:
                found[chat_id] = exc
        return found

    async def _rows_of_chats(self, columns: str, chat_ids: Sequence[str]) -> dict[str, Row]:
        """`columns` (the first being chat_id) of the chats' rows, by id, in one transaction."""
        ids = list(dict.fromkeys(chat_ids))
        rows: dict[str, Row] = {}
        async with self._transaction(write=False) as tx:
            for start in range(0, len(ids), _CHUNK):
                where, args = self._in("chat_id", ids[start : start + _CHUNK])
                for row in await tx.fetch(f"SELECT {columns} FROM chats WHERE {where}", *args):
                    rows[str(row[0])] = row
        return rows

    async def list_chats(
        self, *, status: ChatStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> ChatPage:
        check_page_limit(limit)
        where: list[str] = []
        args: list[Any] = []
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        if cursor is not None:
            created, chat_id = decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND chat_id < ?))")
            args += [created, created, chat_id]
        sql = f"SELECT {_SUMMARY} FROM chats"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, chat_id DESC LIMIT ?"
        async with self._transaction(write=False) as tx:
            rows = await tx.fetch(sql, *args, limit + 1)
        page = tuple(self._summary(row) for row in rows[:limit])
        more = len(rows) > limit
        return ChatPage(chats=page, next_cursor=encode_cursor(page[-1]) if more else None)

    async def set_status(
        self,
        chat_id: str,
        status: ChatStatus,
        *,
        termination: Termination | None = None,
        lease: ChatLease | None = None,
    ) -> None:
        text = None if termination is None else encode_termination(termination, self.limits)
        event = self._event("status", {"status": status.value})
        async with self._transaction() as tx:
            _, _, last_event = await self._writable(tx, chat_id, lease)
            await tx.execute(
                "UPDATE chats SET status = ?, termination = COALESCE(?, termination)"
                " WHERE chat_id = ?",
                status.value,
                text,
                chat_id,
            )
            await self._add_events(tx, chat_id, last_event, [event])

    # -- turns --------------------------------------------------------------------------------

    async def append_turn(
        self, chat_id: str, turn: Turn, *, lease: ChatLease | None = None
    ) -> None:
        prepared = prepare_turn(turn, self.limits)
        async with self._transaction() as tx:
            await self._append_in(tx, chat_id, prepared, lease)

    async def start_chat(
        self, definition: ChatDefinition, owner: str, *, ttl: float
    ) -> ChatLease | None:
        text = encode_definition(definition, self.limits)
        async with self._transaction() as tx:
            return await self._start_in(tx, definition.chat_id, text, owner, ttl)

    async def write_batch(self, ops: Sequence[BatchOp]) -> list[Any]:
        outcome, ready = self._prepare_batch(ops)
        if ready:
            async with self._transaction() as tx:
                await self._batch_in(tx, ops, ready, outcome)
        return outcome

    def _prepare_batch(self, ops: Sequence[BatchOp]) -> tuple[list[Any], list[tuple[int, Any]]]:
        """Encode every op first (outside the transaction): a record refused fails alone."""
        outcome: list[Any] = [None] * len(ops)
        ready: list[tuple[int, Any]] = []
        for index, op in enumerate(ops):
            try:
                if isinstance(op, AppendTurn):
                    ready.append((index, prepare_turn(op.turn, self.limits)))
                elif isinstance(op, StartChat):
                    ready.append((index, encode_definition(op.definition, self.limits)))
                else:
                    ready.append((index, None))
            except JournalError as exc:
                outcome[index] = exc
        return outcome, ready

    async def _batch_in(
        self,
        tx: SqlTx,
        ops: Sequence[BatchOp],
        ready: Sequence[tuple[int, Any]],
        outcome: list[Any],
    ) -> None:
        turns: list[tuple[int, AppendTurn, PreparedTurn]] = []
        starts: list[tuple[int, StartChat, str]] = []
        releases: list[tuple[str, str]] = []
        for index, prepared in ready:
            op = ops[index]
            if isinstance(op, AppendTurn):
                turns.append((index, op, prepared))
                continue
            if isinstance(op, StartChat):
                starts.append((index, op, prepared))
                continue
            if isinstance(op, ReleaseLease):
                releases.append((op.lease.chat_id, op.lease.token))
                continue
            try:  # the checks run before the writes, so a refusal leaves tx clean
                if isinstance(op, AcquireLease):
                    if not await tx.fetch("SELECT 1 FROM chats WHERE chat_id = ?", op.chat_id):
                        raise ChatNotFoundError(
                            f"No chat {op.chat_id!r} is journaled.", chat_id=op.chat_id
                        )
                    outcome[index] = await self._lease_in(tx, op.chat_id, op.owner, op.ttl)
                else:
                    outcome[index] = await self._renew_in(tx, op.lease, op.ttl)
            except (LeaseHeldError, LeaseLostError, ChatNotFoundError) as exc:
                outcome[index] = exc
        if starts:
            await self._start_many(tx, starts, outcome)
        if releases:  # a lease lost already is left alone (the token no longer matches)
            await tx.execute_many(
                "UPDATE leases SET token = '', expires_at = 0.0 WHERE chat_id = ? AND token = ?",
                releases,
            )
        if turns:
            await self._append_many(tx, turns, outcome)

    async def _start_many(
        self, tx: SqlTx, starts: Sequence[tuple[int, StartChat, str]], outcome: list[Any]
    ) -> None:
        """New chats with their `chat.created` event and their first lease, in one statement
        per table; a chat that exists already gets None (resume it), as `start_chat` does."""
        ids = list(dict.fromkeys(op.definition.chat_id for _, op, _ in starts))
        where, args = self._in("chat_id", ids)
        taken = {
            str(row[0]) for row in await tx.fetch(f"SELECT chat_id FROM chats WHERE {where}", *args)
        }
        now = self._clock()
        created = self._event("chat.created", {"status": ChatStatus.RUNNING.value})[1]
        chat_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        lease_rows: list[tuple[Any, ...]] = []
        for index, op, text in starts:
            chat_id = op.definition.chat_id
            if chat_id in taken:
                outcome[index] = None
                continue
            taken.add(chat_id)
            token = secrets.token_urlsafe(16)
            chat_rows.append((chat_id, text, ChatStatus.RUNNING.value, now, now))
            event_rows.append((chat_id, 1, "chat.created", created, now))
            lease_rows.append((chat_id, op.owner, token, now + op.ttl))
            # A new chat has no lease row (chats are never deleted), so its fence is 1; a
            # stray row left by hand is taken over rather than failing the whole batch.
            outcome[index] = ChatLease(
                chat_id=chat_id, owner=op.owner, token=token, fence=1, expires_at=now + op.ttl
            )
        if not chat_rows:
            return
        await tx.execute_many(
            "INSERT INTO chats (chat_id, definition, status, turns, tokens, cost, last_event,"
            " created_at, updated_at) VALUES (?, ?, ?, 0, 0, 0.0, 1, ?, ?)",
            chat_rows,
        )
        await tx.execute_many(
            "INSERT INTO events (chat_id, id, kind, data, at) VALUES (?, ?, ?, ?, ?)", event_rows
        )
        await tx.execute_many(
            "INSERT INTO leases (chat_id, owner, token, fence, expires_at) VALUES (?, ?, ?, 1, ?)"
            " ON CONFLICT (chat_id) DO UPDATE SET owner = excluded.owner,"
            " token = excluded.token, fence = leases.fence + 1, expires_at = excluded.expires_at",
            lease_rows,
        )

    async def _append_many(
        self,
        tx: SqlTx,
        turns: Sequence[tuple[int, AppendTurn, PreparedTurn]],
        outcome: list[Any],
    ) -> None:
        """Many chats' turns in a handful of statements: one SELECT locks and reads every
        chat (and its lease), then one batched statement per table writes what passed."""
        ids = sorted({op.chat_id for _, op, _ in turns})  # one lock order: no deadlocks
        lock = " ORDER BY chats.chat_id FOR UPDATE OF chats" if self.dialect.for_update else ""
        where, args = self._in("chats.chat_id", ids)
        rows = await tx.fetch(
            "SELECT chats.chat_id, chats.status, chats.turns, chats.last_event, leases.token,"
            " leases.expires_at FROM chats LEFT JOIN leases ON leases.chat_id = chats.chat_id"
            f" WHERE {where}" + lock,
            *args,
        )
        chats: dict[str, list[Any]] = {str(row[0]): list(row[1:]) for row in rows}
        now = self._clock()
        blobs: dict[str, bytes] = {}
        turn_rows: list[tuple[Any, ...]] = []
        chat_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        for index, op, prepared in turns:
            chat_id, lease = op.chat_id, op.lease
            try:
                found = chats.get(chat_id)
                if found is None:
                    raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
                raw_status, count, last_event, token, expires_at = found
                status = self._status(raw_status, chat_id)
                if status in TERMINAL:
                    raise ChatFinishedError(
                        f"Chat {chat_id!r} has {status} already.", chat_id=chat_id
                    )
                if lease is not None and (
                    token != lease.token or expires_at is None or float(expires_at) <= now
                ):
                    raise LeaseLostError(
                        f"The lease of {lease.owner!r} on chat {chat_id!r} expired or was taken"
                        " over.",
                        chat_id=chat_id,
                    )
                if prepared.number != int(count) + 1:
                    raise TurnOrderError(
                        f"Chat {chat_id!r} expects turn {int(count) + 1} next, not"
                        f" {prepared.number}.",
                        chat_id=chat_id,
                        expected=int(count) + 1,
                        got=prepared.number,
                    )
            except (
                ChatNotFoundError,
                ChatFinishedError,
                LeaseLostError,
                TurnOrderError,
                CorruptRecordError,
            ) as exc:
                outcome[index] = exc
                continue
            finished = prepared.finished
            events = turn_event_rows(prepared)
            blobs.update(prepared.blobs)
            turn_rows.append((chat_id, prepared.number, prepared.body))
            last = int(last_event)
            chat_rows.append(
                (
                    prepared.number,
                    prepared.tokens,
                    float(prepared.cost),
                    None if finished is None else ChatStatus.FINISHED.value,
                    None if finished is None else encode_termination(finished, self.limits),
                    last + len(events),
                    now,
                    chat_id,
                )
            )
            event_rows += [
                (chat_id, last + offset, kind, data, now)
                for offset, (kind, data) in enumerate(events, start=1)
            ]
            found[1], found[2] = prepared.number, last + len(events)  # a second turn of it
            if finished is not None:
                found[0] = ChatStatus.FINISHED.value
        if blobs:
            await tx.execute_many(
                "INSERT INTO blobs (sha256, data) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
                sorted(blobs.items()),
            )
        if turn_rows:
            await self._write_turn_rows(tx, turn_rows, chat_rows, event_rows)

    async def _write_turn_rows(
        self,
        tx: SqlTx,
        turn_rows: Sequence[tuple[Any, ...]],
        chat_rows: Sequence[tuple[Any, ...]],
        event_rows: Sequence[tuple[Any, ...]],
    ) -> None:
        """A group commit's rows: turns (chat_id, number, body), the chats' counters (turns,
        tokens, cost, status, termination, last_event, updated_at, chat_id) and events
        (chat_id, id, kind, data, at); one batched statement per table."""
        await tx.execute_many(
            "INSERT INTO turns (chat_id, number, body) VALUES (?, ?, ?)", turn_rows
        )
        await tx.execute_many(
            "UPDATE chats SET turns = ?, tokens = tokens + ?, cost = cost + ?,"
            " status = COALESCE(?, status), termination = COALESCE(?, termination),"
            " last_event = ?, updated_at = ? WHERE chat_id = ?",
            chat_rows,
        )
        await tx.execute_many(
            "INSERT INTO events (chat_id, id, kind, data, at) VALUES (?, ?, ?, ?, ?)",
            event_rows,
        )

    async def _start_in(
        self, tx: SqlTx, chat_id: str, text: str, owner: str, ttl: float
    ) -> ChatLease | None:
        if await tx.fetch("SELECT 1 FROM chats WHERE chat_id = ?", chat_id):
            return None
        await self._insert_chat(tx, chat_id, text)
        return await self._lease_in(tx, chat_id, owner, ttl)

    async def _append_in(
        self, tx: SqlTx, chat_id: str, prepared: PreparedTurn, lease: ChatLease | None
    ) -> None:
        finished = prepared.finished
        termination = None if finished is None else encode_termination(finished, self.limits)
        events = turn_event_rows(prepared)
        _, turns, last_event = await self._writable_turn(tx, chat_id, lease)
        if prepared.number != turns + 1:
            raise TurnOrderError(
                f"Chat {chat_id!r} expects turn {turns + 1} next, not {prepared.number}.",
                chat_id=chat_id,
                expected=turns + 1,
                got=prepared.number,
            )
        for sha in sorted(prepared.blobs):  # one order everywhere: no deadlock between turns
            await tx.execute(
                "INSERT INTO blobs (sha256, data) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
                sha,
                prepared.blobs[sha],
            )
        await tx.execute(
            "INSERT INTO turns (chat_id, number, body) VALUES (?, ?, ?)",
            chat_id,
            prepared.number,
            prepared.body,
        )
        await tx.execute(
            "UPDATE chats SET turns = ?, tokens = tokens + ?, cost = cost + ?,"
            " status = COALESCE(?, status), termination = COALESCE(?, termination),"
            " last_event = ?, updated_at = ? WHERE chat_id = ?",
            prepared.number,
            prepared.tokens,
            float(prepared.cost),
            None if finished is None else ChatStatus.FINISHED.value,
            termination,
            last_event + len(events),
            self._clock(),
            chat_id,
        )
        await self._add_events(tx, chat_id, last_event, events, chat_updated=True)

    async def turns(self, chat_id: str, *, after: int = 0) -> list[Turn]:
        async with self._transaction(write=False) as tx:
            if not await tx.fetch("SELECT 1 FROM chats WHERE chat_id = ?", chat_id):
                raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
            rows = await tx.fetch(
                "SELECT number, body FROM turns WHERE chat_id = ? AND number > ? ORDER BY number",
                chat_id,
                after,
            )
            decoded = [decode_turn_row(body, chat_id, int(number)) for number, body in rows]
            wanted = sorted({f.sha256 for row in decoded for f in row.files if f.sha256})
            blobs = await self._blobs(tx, wanted)
        return [rebuild_turn(row, blobs, chat_id) for row in decoded]

    async def load_many(self, chat_ids: Sequence[str]) -> dict[str, list[Turn] | JournalError]:
        """Every chat's turns in one read transaction, a query per table per 500 chats."""
        ids = list(dict.fromkeys(chat_ids))
        rows_of: dict[str, list[tuple[int, str]]] = {}
        async with self._transaction(write=False) as tx:
            for start in range(0, len(ids), _CHUNK):
                where, args = self._in("chat_id", ids[start : start + _CHUNK])
                for (chat_id,) in await tx.fetch(f"SELECT chat_id FROM chats WHERE {where}", *args):
                    rows_of[str(chat_id)] = []
                for chat_id, number, body in await tx.fetch(
                    f"SELECT chat_id, number, body FROM turns WHERE {where}"
                    " ORDER BY chat_id, number",
                    *args,
                ):
                    rows_of.setdefault(str(chat_id), []).append((int(number), body))
            decoded, loaded = self._decode_many(ids, rows_of)
            wanted = sorted(
                {f.sha256 for rows in decoded.values() for r in rows for f in r.files if f.sha256}
            )
            blobs = await self._blobs(tx, wanted)
        for chat_id, rows in decoded.items():
            try:
                loaded[chat_id] = [rebuild_turn(row, blobs, chat_id) for row in rows]
            except CorruptRecordError as exc:
                loaded[chat_id] = exc
        return {chat_id: loaded[chat_id] for chat_id in ids}

    @staticmethod
    def _decode_many(
        ids: Sequence[str], rows_of: Mapping[str, list[tuple[int, str]]]
    ) -> tuple[dict[str, list[TurnRow]], dict[str, list[Turn] | JournalError]]:
        """Each found chat's rows decoded, or its error; a missing chat is `ChatNotFoundError`."""
        decoded: dict[str, list[TurnRow]] = {}
        failed: dict[str, list[Turn] | JournalError] = {}
        for chat_id in ids:
            rows = rows_of.get(chat_id)
            if rows is None:
                failed[chat_id] = ChatNotFoundError(
                    f"No chat {chat_id!r} is journaled.", chat_id=chat_id
                )
                continue
            try:
                decoded[chat_id] = [decode_turn_row(body, chat_id, n) for n, body in rows]
            except CorruptRecordError as exc:
                failed[chat_id] = exc
        return decoded, failed

    async def _blobs(self, tx: SqlTx, shas: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(shas), _CHUNK):
            where, args = self._in("sha256", shas[start : start + _CHUNK])
            for sha, data in await tx.fetch(f"SELECT sha256, data FROM blobs WHERE {where}", *args):
                found[str(sha)] = bytes(data)
        return found

    async def blob(self, sha256: str) -> bytes:
        async with self._transaction(write=False) as tx:
            found = await self._blobs(tx, [sha256])
        return found[sha256]

    # -- events -------------------------------------------------------------------------------

    async def append_event(self, chat_id: str, kind: str, data: Mapping[str, Any]) -> int:
        event = self._event(kind, data)
        async with self._transaction() as tx:
            _, _, last_event = await self._lock_chat(tx, chat_id)
            return await self._add_events(tx, chat_id, last_event, [event])

    async def events(
        self, chat_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[JournalEvent]:
        async with self._transaction(write=False) as tx:
            if not await tx.fetch("SELECT 1 FROM chats WHERE chat_id = ?", chat_id):
                raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
            rows = await tx.fetch(
                "SELECT id, kind, data, at FROM events WHERE chat_id = ? AND id > ?"
                " ORDER BY id LIMIT ?",
                chat_id,
                after,
                limit,
            )
        return [
            JournalEvent(
                chat_id=chat_id,
                id=int(i),
                kind=str(kind),
                data=decode_data(data, chat_id, f"event {i}"),
                at=float(at),
            )
            for i, kind, data, at in rows
        ]

    # -- questions to humans ------------------------------------------------------------------

    async def ask_input(
        self, chat_id: str, prompt: str, *, lease: ChatLease | None = None
    ) -> PendingInput:
        check_row_size(prompt, "question", self.limits)
        token = secrets.token_urlsafe(24)
        async with self._transaction() as tx:
            _, turns, last_event = await self._writable(tx, chat_id, lease)
            question = PendingInput(
                chat_id=chat_id, token=token, turn=turns + 1, prompt=prompt, asked_at=self._clock()
            )
            await tx.execute(
                "INSERT INTO inputs (token, chat_id, turn, prompt, asked_at)"
                " VALUES (?, ?, ?, ?, ?)",
                token,
                chat_id,
                question.turn,
                prompt,
                question.asked_at,
            )
            await tx.execute(
                "UPDATE chats SET status = ? WHERE chat_id = ?", ChatStatus.WAITING.value, chat_id
            )
            event = self._event("input.asked", {"token": token, "turn": question.turn})
            await self._add_events(tx, chat_id, last_event, [event])
        return question

    async def answer_input(self, token: str, answer: str) -> PendingInput:
        check_row_size(answer, "answer", self.limits)
        async with self._transaction() as tx:
            now = self._clock()
            rows = await tx.fetch(
                "UPDATE inputs SET answer = ?, answered_at = ? WHERE token = ? AND answer IS NULL"
                " RETURNING chat_id, turn, prompt, asked_at",
                answer,
                now,
                token,
            )
            if not rows:
                if await tx.fetch("SELECT 1 FROM inputs WHERE token = ?", token):
                    raise InputAlreadyAnsweredError(
                        "This question was answered already.", token=token
                    )
                raise UnknownInputTokenError("No question carries this token.", token=token)
            chat_id, turn, prompt, asked_at = rows[0]
            status, _, last_event = await self._lock_chat(tx, chat_id)
            if status is ChatStatus.WAITING:
                await tx.execute(
                    "UPDATE chats SET status = ? WHERE chat_id = ?",
                    ChatStatus.RUNNING.value,
                    chat_id,
                )
            event = self._event("input.answered", {"token": token, "turn": int(turn)})
            await self._add_events(tx, chat_id, last_event, [event])
        return PendingInput(
            chat_id=str(chat_id),
            token=token,
            turn=int(turn),
            prompt=str(prompt),
            asked_at=float(asked_at),
            answer=answer,
            answered_at=now,
        )

    async def inputs(self, chat_id: str) -> list[PendingInput]:
        async with self._transaction(write=False) as tx:
            if not await tx.fetch("SELECT 1 FROM chats WHERE chat_id = ?", chat_id):
                raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
            rows = await tx.fetch(
                "SELECT token, turn, prompt, asked_at, answer, answered_at FROM inputs"
                " WHERE chat_id = ? ORDER BY asked_at, token",
                chat_id,
            )
        return [
            PendingInput(
                chat_id=chat_id,
                token=str(token),
                turn=int(turn),
                prompt=str(prompt),
                asked_at=float(asked_at),
                answer=None if answer is None else str(answer),
                answered_at=None if answered_at is None else float(answered_at),
            )
            for token, turn, prompt, asked_at, answer, answered_at in rows
        ]

    # -- leases -------------------------------------------------------------------------------

    async def acquire_lease(self, chat_id: str, owner: str, *, ttl: float) -> ChatLease:
        async with self._transaction() as tx:
            if not await tx.fetch("SELECT 1 FROM chats WHERE chat_id = ?", chat_id):
                raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
            return await self._lease_in(tx, chat_id, owner, ttl)

    async def _lease_in(self, tx: SqlTx, chat_id: str, owner: str, ttl: float) -> ChatLease:
        token = secrets.token_urlsafe(16)
        now = self._clock()
        # One statement decides: insert, or take over only if the holder's lease expired
        # (or the holder is this owner again, e.g. after the store came back).
        rows = await tx.fetch(
            "INSERT INTO leases (chat_id, owner, token, fence, expires_at)"
            " VALUES (?, ?, ?, 1, ?) ON CONFLICT (chat_id) DO UPDATE SET"
            " owner = excluded.owner, token = excluded.token, fence = leases.fence + 1,"
            " expires_at = excluded.expires_at"
            " WHERE leases.expires_at <= ? OR leases.owner = excluded.owner RETURNING fence",
            chat_id,
            owner,
            token,
            now + ttl,
            now,
        )
        if not rows:
            held = await tx.fetch("SELECT owner, expires_at FROM leases WHERE chat_id = ?", chat_id)
            holder, expires_at = (held[0][0], float(held[0][1])) if held else ("?", now)
            raise LeaseHeldError(
                f"Chat {chat_id!r} is leased to {holder!r} for {expires_at - now:.1f} s more.",
                chat_id=chat_id,
                owner=str(holder),
                expires_at=expires_at,
            )
        return ChatLease(
            chat_id=chat_id, owner=owner, token=token, fence=int(rows[0][0]), expires_at=now + ttl
        )

    async def renew_lease(self, lease: ChatLease, *, ttl: float) -> ChatLease:
        async with self._transaction() as tx:
            return await self._renew_in(tx, lease, ttl)

    async def _renew_in(self, tx: SqlTx, lease: ChatLease, ttl: float) -> ChatLease:
        expires_at = self._clock() + ttl
        changed = await tx.fetch(
            "UPDATE leases SET expires_at = ? WHERE chat_id = ? AND token = ? RETURNING fence",
            expires_at,
            lease.chat_id,
            lease.token,
        )
        if not changed:
            raise LeaseLostError(
                f"The lease of {lease.owner!r} on chat {lease.chat_id!r} was taken over"
                " or released.",
                chat_id=lease.chat_id,
            )
        return ChatLease(
            chat_id=lease.chat_id,
            owner=lease.owner,
            token=lease.token,
            fence=lease.fence,
            expires_at=expires_at,
        )

    async def release_lease(self, lease: ChatLease) -> None:
        async with self._transaction() as tx:
            await self._release_in(tx, lease)

    async def _release_in(self, tx: SqlTx, lease: ChatLease) -> None:
        # Keep the row (and its fence); an expired, tokenless lease is free to take.
        await tx.execute(
            "UPDATE leases SET token = '', expires_at = 0.0 WHERE chat_id = ? AND token = ?",
            lease.chat_id,
            lease.token,
        )

    # -- the store ----------------------------------------------------------------------------

    async def statistics(self) -> StoreStatistics:
        octets = self.dialect.octets
        async with self._transaction(write=False) as tx:
            chats = await tx.fetch(
                f"SELECT COUNT(*), SUM({octets.format('definition')}) FROM chats"
            )
            turns = await tx.fetch(f"SELECT COUNT(*), SUM({octets.format('body')}) FROM turns")
            events = await tx.fetch(f"SELECT COUNT(*), SUM({octets.format('data')}) FROM events")
            blobs = await tx.fetch(f"SELECT COUNT(*), SUM({octets.format('data')}) FROM blobs")
        return StoreStatistics(
            chats=int(chats[0][0]),
            turns=int(turns[0][0]),
            events=int(events[0][0]),
            blobs=int(blobs[0][0]),
            blob_bytes=int(blobs[0][1] or 0),
            row_bytes=int((chats[0][1] or 0) + (turns[0][1] or 0) + (events[0][1] or 0)),
        )
