"""`SqliteChatStore`: the embedded default, one SQLite file in WAL mode through aiosqlite."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._drivers import import_driver
from ._errors import JournalConfigError, StoreError, StoreUnavailableError
from ._sql import SQLITE_TYPES, Dialect, SqlChatStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Sequence

    import aiosqlite

    from ._records import StoreLimits
    from ._sql import Row
    from ._store import BatchOp

SQLITE = Dialect(
    types=SQLITE_TYPES,
    for_update="",  # BEGIN IMMEDIATE takes the write lock for the whole transaction
    octets="length(CAST({} AS BLOB))",
)

Synchronous = Literal["full", "normal"]


class _Tx:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.execute_fetchall(sql, args)  # one trip to the worker thread

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._connection.execute_fetchall(sql, args))

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._connection.executemany(sql, rows)


class _SyncTx:
    """A transaction of the batch connection, which holds the write lock already: its
    statements never wait for another writer (the disk sync waits for COMMIT)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, *args: Any) -> None:
        self._connection.execute(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return self._connection.execute(sql, args).fetchall()

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._connection.executemany(sql, rows)


def _drive(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends (its awaits are `_SyncTx` calls) to its end."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("a batch over the SQLite batch connection suspended")


def _probe(path: Path) -> None:
    """Raises: sqlite3.Error: the file cannot be opened as a database."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA schema_version")
    finally:
        connection.close()


class SqliteChatStore(SqlChatStore):
    """A journal in one SQLite file (WAL); several processes may share it on one machine.

    `synchronous="full"` (the default) syncs every turn to disk before `append_turn` returns;
    `"normal"` survives a crashed process but may lose the last turns on a power cut.
    """

    dialect = SQLITE

    def __init__(
        self,
        path: str | Path,
        *,
        limits: StoreLimits | None = None,
        clock: Callable[[], float] = time.time,
        synchronous: Synchronous = "full",
        busy_timeout: float = 30.0,
    ) -> None:
        super().__init__(limits=limits, clock=clock)
        if synchronous not in ("full", "normal"):
            raise JournalConfigError(
                f"synchronous must be 'full' or 'normal', not {synchronous!r}.",
                setting="synchronous",
            )
        self.path = Path(path)
        self._synchronous = synchronous
        self._busy_ms = int(busy_timeout * 1000)
        self._connection: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()  # one connection: one transaction at a time
        # Group commits run whole in one thread on a connection of their own: one trip per
        # batch instead of one per statement.
        self._batcher: ThreadPoolExecutor | None = None
        self._batch_connection: sqlite3.Connection | None = None

    @property
    def name(self) -> str:
        return f"sqlite:///{self.path}"

    async def open(self) -> None:
        """Open (creating the file and its folder) and migrate.

        Raises:
            MissingDriverError: aiosqlite is not installed.
            StoreUnavailableError: the file cannot be opened as a database.
            SchemaVersionError: the journal was written by a newer moot.
        """
        aiosqlite = import_driver("aiosqlite")
        if self._connection is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Try the file with the stdlib first: aiosqlite leaves its worker thread to report a
            # failed connect to a loop that may be gone by then.
            await asyncio.to_thread(_probe, self.path)
            connection = await aiosqlite.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self._unavailable(exc) from exc
        self._connection = connection
        try:
            for pragma in (
                "PRAGMA journal_mode=WAL",
                f"PRAGMA synchronous={self._synchronous.upper()}",
                f"PRAGMA busy_timeout={self._busy_ms}",
                "PRAGMA foreign_keys=ON",
            ):
                await connection.execute(pragma)
            async with self._transaction() as tx:
                await self._migrate(tx)
        except sqlite3.Error as exc:
            await self.aclose()
            raise self._unavailable(exc) from exc
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await asyncio.get_running_loop().run_in_executor(batcher, self._close_batch_connection)
            batcher.shutdown(wait=False)
        if connection is not None:
            await connection.close()

    def _close_batch_connection(self) -> None:
        batch, self._batch_connection = self._batch_connection, None
        if batch is not None:
            batch.close()

    async def write_batch(self, ops: Sequence[BatchOp]) -> list[Any]:
        """A group commit: BEGIN and COMMIT (the waits: the write lock, the sync to disk) in
        the batch thread; the statements between them on the loop's thread, where they cost
        what they cost in the thread, without handing the GIL back and forth per row."""
        if self._connection is None:
            raise self._not_open()
        outcome, ready = self._prepare_batch(ops)
        if not ready:
            return outcome
        if self._batcher is None:
            self._batcher = ThreadPoolExecutor(1, thread_name_prefix="moot-journal")
        loop = asyncio.get_running_loop()
        batch = await loop.run_in_executor(self._batcher, self._begin_batch)
        try:
            try:
                _drive(self._batch_in(_SyncTx(batch), ops, ready, outcome))
            except BaseException:
                batch.execute("ROLLBACK")
                raise
            await loop.run_in_executor(self._batcher, batch.execute, "COMMIT")
        except sqlite3.Error as exc:
            await loop.run_in_executor(self._batcher, self._rollback_batch)
            raise self._failure(exc, write=True) from exc
        return outcome

    def _begin_batch(self) -> sqlite3.Connection:
        """In the batch thread: the batch connection (opened on first use) in a write
        transaction; one a cancelled batch left open is rolled back first."""
        try:
            batch = self._batch_connection
            if batch is None:
                batch = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                batch.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
                batch.execute(f"PRAGMA busy_timeout={self._busy_ms}")
                batch.execute("PRAGMA foreign_keys=ON")
                self._batch_connection = batch
            if batch.in_transaction:
                batch.execute("ROLLBACK")
            batch.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._failure(exc, write=True) from exc
        return batch

    def _rollback_batch(self) -> None:
        batch = self._batch_connection
        if batch is not None and batch.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                batch.execute("ROLLBACK")

    @property
    def _where(self) -> str:
        return f"The SQLite journal at {self.path}"

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"The SQLite journal at {self.path} cannot be opened: {exc}.", store=self.name
        )

    def _failure(self, exc: sqlite3.Error, *, write: bool) -> StoreError:
        """The one place SQLite's errors become ours."""
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
            return self._unavailable(exc)
        return self._refused(exc, write=write)

    @asynccontextmanager
    async def _transaction(self, *, write: bool = True) -> AsyncIterator[_Tx]:
        connection = self._connection
        if connection is None:
            raise self._not_open()
        async with self._lock:
            try:
                await connection.execute_fetchall("BEGIN IMMEDIATE" if write else "BEGIN")
                yield _Tx(connection)
                await connection.execute_fetchall("COMMIT")
            except BaseException as exc:
                # A cancelled await leaves its statement queued on aiosqlite's thread (BEGIN,
                # COMMIT, ...); statements run in order, so a ROLLBACK queued now runs after it
                # and no later caller inherits an open transaction.
                await asyncio.shield(_rollback_quietly(connection))
                if isinstance(exc, sqlite3.Error):
                    raise self._failure(exc, write=write) from exc
                raise


async def _rollback_quietly(connection: Any) -> None:
    """Undo an open transaction; with none open (it never began, or it committed) do nothing."""
    with contextlib.suppress(sqlite3.Error):
        await connection.execute_fetchall("ROLLBACK")
