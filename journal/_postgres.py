"""`PostgresChatStore`: the journal in Postgres through an asyncpg pool, for many processes."""

from __future__ import annotations

import asyncio
import functools
import re
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ._drivers import import_driver
from ._errors import StoreError, StoreUnavailableError, StoreWriteError
from ._sql import POSTGRES_TYPES, Dialect, SqlChatStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from ._records import StoreLimits
    from ._sql import Row, SqlTx

POSTGRES = Dialect(
    types=POSTGRES_TYPES,
    for_update=" FOR UPDATE",
    octets="octet_length({})",
)

_MIGRATION_LOCK = 0x6D6F6F74  # "moot": one opener migrates at a time


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """Our `?` placeholders as Postgres's `$1, $2, ...`."""
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def _redacted(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class _Tx:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.execute(_numbered(sql), *args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(r) for r in await self._connection.fetch(_numbered(sql), *args)]

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._connection.executemany(_numbered(sql), rows)


# A group commit's rows as one statement per table: the columns travel as arrays, so the
# server runs one statement (one plan, one executor start) instead of one per turn.
_INSERT_TURNS = (
    "INSERT INTO turns (chat_id, number, body)"
    " SELECT * FROM unnest(?::text[], ?::integer[], ?::text[])"
)
_UPDATE_CHATS = (
    "UPDATE chats SET turns = u.turns, tokens = chats.tokens + u.tokens,"
    " cost = chats.cost + u.cost,"
    " status = COALESCE(u.status, chats.status),"
    " termination = COALESCE(u.termination, chats.termination),"
    " last_event = u.last_event, updated_at = u.updated_at"
    " FROM unnest(?::integer[], ?::bigint[], ?::double precision[], ?::text[], ?::text[],"
    " ?::bigint[], ?::double precision[], ?::text[])"
    " AS u(turns, tokens, cost, status, termination, last_event, updated_at, chat_id)"
    " WHERE chats.chat_id = u.chat_id"
)
_INSERT_EVENTS = (
    "INSERT INTO events (chat_id, id, kind, data, at)"
    " SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[], ?::text[], ?::double precision[])"
)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as columns (what `unnest` takes)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


class PostgresChatStore(SqlChatStore):
    """A journal in Postgres: every process with the DSN shares it; row locks order writers."""

    dialect = POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        limits: StoreLimits | None = None,
        clock: Callable[[], float] = time.time,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(limits=limits, clock=clock)
        self.dsn = dsn
        self._min = min_connections
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._pool: Any = None

    @property
    def name(self) -> str:
        return _redacted(self.dsn)

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        # One array parameter: one prepared statement, whatever the number of values.
        return f"{column} = ANY(?::text[])", [list(values)]

    async def _write_turn_rows(
        self,
        tx: SqlTx,
        turn_rows: Sequence[tuple[Any, ...]],
        chat_rows: Sequence[tuple[Any, ...]],
        event_rows: Sequence[tuple[Any, ...]],
    ) -> None:
        if len({row[-1] for row in chat_rows}) < len(chat_rows):  # a chat twice: in order
            await super()._write_turn_rows(tx, turn_rows, chat_rows, event_rows)
            return
        await tx.execute(_INSERT_TURNS, *_columns(turn_rows, 3))
        await tx.execute(_UPDATE_CHATS, *_columns(chat_rows, 8))
        await tx.execute(_INSERT_EVENTS, *_columns(event_rows, 5))

    async def open(self) -> None:
        """Connect a pool and migrate.

        Raises:
            MissingDriverError: asyncpg is not installed.
            StoreUnavailableError: the server cannot be reached or refuses the login.
            SchemaVersionError: the journal was written by a newer moot.
        """
        asyncpg = import_driver("asyncpg")
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._min,
                max_size=self._max,
                timeout=self._connect_timeout,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._unavailable(exc) from exc
        try:
            async with self._transaction() as tx:
                await tx.fetch("SELECT pg_advisory_xact_lock(?)", _MIGRATION_LOCK)
                await self._migrate(tx)
        except StoreWriteError as exc:
            await self.aclose()
            raise self._unavailable(exc) from exc
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:  # a graceful close waits for the server; one that is gone gets the connections cut
            await asyncio.wait_for(pool.close(), self._connect_timeout)
        except (OSError, TimeoutError, import_driver("asyncpg").PostgresError):
            pool.terminate()

    @property
    def _where(self) -> str:
        return f"The Postgres journal at {self.name}"

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"The Postgres journal at {self.name} cannot be reached: {exc}.", store=self.name
        )

    def _failure(self, exc: BaseException, *, write: bool) -> StoreError:
        """The one place asyncpg's errors become ours."""
        asyncpg = import_driver("asyncpg")
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        lost = isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError)
        if lost or sqlstate.startswith(("08", "57P")):
            return self._unavailable(exc)
        return self._refused(exc, write=write)

    @asynccontextmanager
    async def _transaction(self, *, write: bool = True) -> AsyncIterator[_Tx]:
        pool = self._pool
        if pool is None:
            raise self._not_open()
        asyncpg = import_driver("asyncpg")
        try:
            async with pool.acquire() as connection, connection.transaction():
                yield _Tx(connection)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._failure(exc, write=write) from exc
