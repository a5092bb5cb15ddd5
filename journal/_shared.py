"""One opened store per URL per event loop, shared by every chat of the process.

Chats journal by default, so a script that runs a thousand chats must not open a thousand
SQLite connections: `use_store` opens the store (behind a `GroupCommitStore`) for the first chat
and closes it when the last chat using it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING

import structlog

from ._batch import GroupCommitStore
from ._errors import StoreUnavailableError
from ._memory import InMemoryChatStore
from ._open import STORE_ENV, default_journal_path, store_from_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._store import ChatStore

log = structlog.get_logger("moot.journal")

_open: dict[tuple[int, str], tuple[GroupCommitStore, int]] = {}
_opening: dict[tuple[int, str], asyncio.Lock] = {}


def journal_url() -> str:
    """$MOOT_JOURNAL_URL, else the SQLite file under the user's data folder."""
    return os.environ.get(STORE_ENV) or f"sqlite:///{default_journal_path()}"


@contextlib.asynccontextmanager
async def use_store(store: ChatStore | str | None = None) -> AsyncIterator[ChatStore]:
    """The store to journal into: `store` itself (opened by its owner), or the shared store of
    a URL (default: `journal_url()`), opened on first use and closed after the last. When the
    default file cannot be opened and no URL was configured, chats journal in memory (a warning).

    Raises:
        JournalConfigError: the URL cannot be used.
        StoreUnavailableError: the store cannot be reached or opened.
        SchemaVersionError: the journal was written by a newer moot.
    """
    if store is not None and not isinstance(store, str):
        yield store
        return
    url = store or journal_url()
    # Nobody asked for this journal: if the default file cannot be opened (a read-only home, a
    # full disk), the chat still runs, journaled in memory only, and says so once.
    implicit = store is None and not os.environ.get(STORE_ENV)
    key = (id(asyncio.get_running_loop()), url)
    lock = _opening.setdefault(key, asyncio.Lock())
    async with lock:
        held = _open.get(key)
        if held is None:
            shared = GroupCommitStore(store_from_url(url))
            try:
                await shared.open()
            except StoreUnavailableError as exc:
                if not implicit:
                    raise
                log.warning("journal.default_unavailable", url=url, error=str(exc))
                shared = GroupCommitStore(InMemoryChatStore())
                await shared.open()
            held = (shared, 0)
        _open[key] = (held[0], held[1] + 1)
    try:
        yield held[0]
    finally:
        async with lock:
            shared, users = _open[key]
            if users > 1:
                _open[key] = (shared, users - 1)
            else:
                del _open[key]
                await shared.aclose()
