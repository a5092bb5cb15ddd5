"""Choosing a store by URL, and the zero-configuration default under the user's data folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from ._errors import JournalConfigError
from ._memory import InMemoryChatStore
from ._postgres import PostgresChatStore
from ._sqlite import SqliteChatStore

if TYPE_CHECKING:
    from ._records import StoreLimits
    from ._store import ChatStore

#: The environment variable that overrides the default store's URL.
STORE_ENV = "MOOT_JOURNAL_URL"


def default_journal_path() -> Path:
    """$XDG_DATA_HOME/moot/journal.sqlite3, or ~/.local/share/moot/journal.sqlite3."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "moot" / "journal.sqlite3"


def store_from_url(url: str, *, limits: StoreLimits | None = None) -> ChatStore:
    """The store a URL names, not yet opened: `sqlite:///path`, `postgresql://...`, `memory://`.

    SQLite takes `?synchronous=normal` to trade the last turns on a power cut for speed.

    Raises:
        JournalConfigError: an unknown scheme or a URL without what the store needs.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return InMemoryChatStore(limits=limits)
    if scheme in ("postgresql", "postgres"):
        if not parts.hostname and "host=" not in parts.query:
            raise JournalConfigError(f"A Postgres store URL names a host: {url!r}.", setting="url")
        return PostgresChatStore(url, limits=limits)
    if scheme == "sqlite":
        if parts.netloc or not parts.path or parts.path == "/":
            raise JournalConfigError(
                f"A SQLite store URL is sqlite:///relative/path or sqlite:////absolute/path,"
                f" not {url!r}.",
                setting="url",
            )
        query = parse_qs(parts.query)
        synchronous = query.get("synchronous", ["full"])[-1].lower()
        if synchronous not in ("full", "normal"):
            raise JournalConfigError(
                f"synchronous is 'full' or 'normal', not {synchronous!r}.", setting="synchronous"
            )
        return SqliteChatStore(
            parts.path[1:], limits=limits, synchronous="full" if synchronous == "full" else "normal"
        )
    raise JournalConfigError(
        f"Unknown journal store {url!r}: use sqlite:///path, postgresql://... or memory://.",
        setting="url",
    )


async def open_store(url: str | None = None, *, limits: StoreLimits | None = None) -> ChatStore:
    """The store a URL names, opened (schema created or migrated). Close it with `aclose`.

    Without a URL: $MOOT_JOURNAL_URL, else the SQLite file of `default_journal_path()`.

    Raises:
        JournalConfigError: the URL cannot be used.
        MissingDriverError: the store's driver package is not installed.
        StoreUnavailableError: the store cannot be reached or opened.
        SchemaVersionError: the journal was written by a newer moot.
    """
    url = url or os.environ.get(STORE_ENV) or f"sqlite:///{default_journal_path()}"
    store = store_from_url(url, limits=limits)
    await store.open()
    return store


async def default_store(*, limits: StoreLimits | None = None) -> ChatStore:
    """The zero-configuration journal, opened: see `open_store` (no URL).

    Raises:
        StoreUnavailableError: the file cannot be created or opened.
        SchemaVersionError: the journal was written by a newer moot.
    """
    return await open_store(None, limits=limits)
