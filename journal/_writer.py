"""`ChatWriter`: one chat run's hand on the journal, shared by two-agent and group chats.

It starts a chat (or finds it again, for a resume), holds its lease and renews it as turns are
journaled, numbers the turns, and on close finishes the chat and frees the lease. Work files
over the store's caps are left out of their turn with a `files.not_journaled` event, so a big
output file does not stop the chat (see docs/durability.md, "Work files").
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import structlog

from ._errors import ChatFinishedError, JournalError, RecordTooLargeError
from ._records import ChatStatus

if TYPE_CHECKING:
    from ._records import (
        ChatDefinition,
        ChatLease,
        FileChange,
        StoreLimits,
        Termination,
        Turn,
    )
    from ._store import ChatStore

log = structlog.get_logger("moot.journal.writer")

#: The event a turn carries when work files were left out of it (over a size cap).
FILES_NOT_JOURNALED = "files.not_journaled"


def lease_owner() -> str:
    """A lease holder's name: this host and process, and a random part per run or manager."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(slots=True, kw_only=True)
class ChatWriter:
    """Holds a chat's lease and writes its turns; `journaled` holds the turns found on resume."""

    store: ChatStore
    chat_id: str
    lease: ChatLease
    ttl: float
    definition: ChatDefinition | None = None  # read back on resume
    journaled: tuple[Turn, ...] = ()
    turns: int = 0  # journaled so far
    finished: bool = False

    @property
    def resumed(self) -> bool:
        return bool(self.journaled)

    async def keep_lease(self) -> None:
        """Renew the lease once half its TTL is gone: a chat renews as it journals its turns
        (no timer per chat); the fence stops a holder that was too slow from writing twice."""
        if time.time() > self.lease.expires_at - self.ttl / 2:
            self.lease = await self.store.renew_lease(self.lease, ttl=self.ttl)

    async def append(self, turn: Turn) -> Turn:
        """Journal `turn` as the chat's next one (its number is set here); durable on return.

        Files over the store's caps are left out of the turn and named in a
        `files.not_journaled` event; the turn itself is kept.

        Raises:
            JournalError: the store refused or lost the turn; nothing of it was kept.
        """
        await self.keep_lease()
        turn = replace(turn, number=self.turns + 1)
        try:
            await self.store.append_turn(self.chat_id, turn, lease=self.lease)
        except RecordTooLargeError as exc:
            if exc.what not in ("file", "turn") or not turn.files:
                raise
            kept, dropped = fit_files(turn.files, self.store.limits)
            turn = replace(turn, files=kept)
            try:
                await self.store.append_turn(self.chat_id, turn, lease=self.lease)
            except RecordTooLargeError as again:
                if again.what == "row":
                    raise
                dropped, turn = dropped + kept, replace(turn, files=())
                await self.store.append_turn(self.chat_id, turn, lease=self.lease)
            await self._files_left_out(turn.number, dropped, str(exc))
        self.turns = turn.number
        self.finished = turn.termination is not None
        return turn

    async def _files_left_out(self, number: int, dropped: tuple[FileChange, ...], why: str) -> None:
        files = [{"path": f.path, "size": len(f.data or b"")} for f in dropped]
        log.warning("journal.files_not_journaled", chat_id=self.chat_id, turn=number, files=files)
        await self.store.append_event(
            self.chat_id, FILES_NOT_JOURNALED, {"turn": number, "files": files, "reason": why}
        )

    async def close(self, termination: Termination | None) -> None:
        """Finish the chat with `termination` (unless a turn did), or leave it resumable (None);
        then free the lease, whatever happened."""
        try:
            if termination is not None and not self.finished:
                await self.store.set_status(
                    self.chat_id, ChatStatus.FINISHED, termination=termination, lease=self.lease
                )
                self.finished = True
        finally:
            with contextlib.suppress(JournalError, OSError):
                await self.store.release_lease(self.lease)


def fit_files(
    files: tuple[FileChange, ...], limits: StoreLimits
) -> tuple[tuple[FileChange, ...], tuple[FileChange, ...]]:
    """The files that fit the caps (each under `max_file_bytes`, together under what a turn
    leaves after its row), and those left out."""
    budget = limits.max_turn_bytes - limits.max_row_bytes
    kept: list[FileChange] = []
    dropped: list[FileChange] = []
    for change in files:
        size = len(change.data or b"")
        if size > limits.max_file_bytes or size > budget:
            dropped.append(change)
            continue
        budget -= size
        kept.append(change)
    return tuple(kept), tuple(dropped)


async def begin_chat(
    store: ChatStore, definition: ChatDefinition, owner: str, *, ttl: float, new: bool = True
) -> ChatWriter:
    """Start the chat and lease it, or (if it exists, or `new` is False) resume it: lease it
    and read back its definition and turns.

    Raises:
        ChatNotFoundError: `new` is False and there is no such chat.
        ChatFinishedError: the chat has finished or failed already.
        LeaseHeldError: another process runs this chat now.
        StoreUnavailableError: the store cannot be reached.
    """
    chat_id = definition.chat_id
    if new:
        lease = await store.start_chat(definition, owner, ttl=ttl)
        if lease is not None:
            return ChatWriter(store=store, chat_id=chat_id, lease=lease, ttl=ttl)
    summary = await store.summary(chat_id)
    if summary.status in (ChatStatus.FINISHED, ChatStatus.FAILED):
        raise ChatFinishedError(
            f"chat {chat_id!r} has {summary.status} already; read it with `moot chats show`",
            chat_id=chat_id,
        )
    lease = await store.acquire_lease(chat_id, owner, ttl=ttl)
    try:
        found = await store.definition(chat_id)
        turns = tuple(await store.turns(chat_id))
    except BaseException:
        with contextlib.suppress(JournalError, OSError):
            await store.release_lease(lease)
        raise
    return ChatWriter(
        store=store,
        chat_id=chat_id,
        lease=lease,
        ttl=ttl,
        definition=found,
        journaled=turns,
        turns=len(turns),
    )


def replay_files(turns: tuple[Turn, ...], speaker: str) -> dict[str, bytes | None]:
    """The work files `speaker`'s turns left (None: deleted), to restore its workspace."""
    files: dict[str, bytes | None] = {}
    for turn in turns:
        if turn.speaker == speaker:
            for change in turn.files:
                files[change.path] = change.data
    return files
