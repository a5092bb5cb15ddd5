"""The journal tests' helpers: `Backend` opens stores of one kind over one shared journal (two
connections, reopening, breaking a row on purpose) and `FakeClock` moves wall time by hand."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from moot.journal import (
    ChatStore,
    InMemoryChatStore,
    PostgresChatStore,
    SqliteChatStore,
    StoreWriteError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from moot.journal import StoreLimits


class SabotagedMemoryStore(InMemoryChatStore):
    """The memory store with a fault injected after a turn's rows are staged."""

    sabotaged: frozenset[str] = frozenset()

    def _stage_event(self, chat: Any, kind: str, data: Mapping[str, Any]) -> tuple[str, str, float]:
        staged = super()._stage_event(chat, kind, data)
        if kind == "turn" and data.get("speaker") in self.sabotaged:
            raise StoreWriteError("injected failure mid-turn", store="memory://")
        return staged


SQLITE_TRIGGER = (
    "CREATE TRIGGER sabotage BEFORE INSERT ON events WHEN NEW.kind = 'turn'"
    " AND NEW.data LIKE '%\"speaker\":\"saboteur\"%' BEGIN SELECT RAISE(ABORT, 'injected'); END"
)
POSTGRES_TRIGGER = (
    "CREATE FUNCTION sabotage() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " IF NEW.kind = 'turn' AND NEW.data LIKE '%\"speaker\":\"saboteur\"%' THEN"
    " RAISE EXCEPTION 'injected'; END IF; RETURN NEW; END $$;"
    " CREATE TRIGGER sabotage BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION sabotage()"
)


@dataclass
class Backend:
    """Opens stores of one kind over one journal; closes them all at the end."""

    kind: str
    target: str  # the SQLite path or the Postgres DSN ("" for memory)
    opened: list[ChatStore] = field(default_factory=list)
    memory: InMemoryChatStore | None = None

    @property
    def durable(self) -> bool:
        return self.kind != "memory"

    async def open(self, *, limits: StoreLimits | None = None, clock: Any = None) -> ChatStore:
        """A store on the shared journal (memory: the one shared instance)."""
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        store: ChatStore
        if self.kind == "memory":
            if self.memory is None:
                self.memory = SabotagedMemoryStore(limits=limits, **extra)
            return self.memory
        if self.kind == "sqlite":
            store = SqliteChatStore(self.target, limits=limits, **extra)
        else:
            store = PostgresChatStore(self.target, limits=limits, **extra)
        await store.open()
        self.opened.append(store)
        return store

    async def raw(self, sql: str, *args: Any) -> list[Any]:
        """Run SQL on the journal behind the store's back (durable kinds only)."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.target, isolation_level=None) as connection:
                rows = connection.execute(sql, args).fetchall()
            connection.close()
            return rows
        connection = await asyncpg.connect(self.target)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def sabotage(self) -> None:
        """Make every turn by speaker "saboteur" fail after its blobs and row are written."""
        if self.kind == "memory":
            store = await self.open()
            assert isinstance(store, SabotagedMemoryStore)
            store.sabotaged = frozenset({"saboteur"})
        elif self.kind == "sqlite":
            await self.raw(SQLITE_TRIGGER)
        else:
            connection = await asyncpg.connect(self.target)
            try:
                await connection.execute(POSTGRES_TRIGGER)
            finally:
                await connection.close()

    async def aclose(self) -> None:
        for store in self.opened:
            await store.aclose()


class FakeClock:
    """Wall time the test moves by hand (leases, paging)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
