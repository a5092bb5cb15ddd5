"""The journal's fixtures: one real Postgres server per test session (a fresh database per
test), a real SQLite file per test, and `backend`, which opens stores of one kind over one
shared journal so a test can use two connections, reopen, or break a row on purpose."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import asyncpg
import pytest
from journal_helpers import Backend, FakeClock
from pg_helpers import PostgresServer, require_postgres

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from moot.journal import ChatStore


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(require_postgres())
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.remove()


async def _admin(dsn: str, sql: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's server, dropped after the test."""
    if not postgres_server.running():  # a test that stopped it failed before restarting it
        postgres_server.start()
    name = "t_" + uuid.uuid4().hex[:12]
    asyncio.run(_admin(postgres_server.dsn, f"CREATE DATABASE {name}"))
    yield postgres_server.dsn.rsplit("/", 1)[0] + "/" + name
    if not postgres_server.running():
        postgres_server.start()
    asyncio.run(_admin(postgres_server.dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _target(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    if kind == "memory":
        return kind, ""
    if kind == "sqlite":
        return kind, str(tmp_path / "journal.sqlite3")
    return kind, str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return _target(request.param, tmp_path, request)


@pytest.fixture(params=["sqlite", "postgres"])
def durable_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return _target(request.param, tmp_path, request)


@pytest.fixture
async def backend(any_target: tuple[str, str]) -> AsyncIterator[Backend]:
    made = Backend(*any_target)
    yield made
    await made.aclose()


@pytest.fixture
async def durable_backend(durable_target: tuple[str, str]) -> AsyncIterator[Backend]:
    made = Backend(*durable_target)
    yield made
    await made.aclose()


@pytest.fixture
async def store(backend: Backend) -> ChatStore:
    return await backend.open()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
