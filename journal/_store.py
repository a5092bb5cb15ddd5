"""The seam: `ChatStore`, a write-ahead journal of chats. A turn is durable before the next
speaker is asked, and each write is one transaction, so a crash never leaves half a turn.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeAlias

from ._errors import ChatExistsError, ChatNotFoundError, CorruptRecordError, JournalError
from ._records import ChatStatus, StoreLimits

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

    from ._records import (
        ChatDefinition,
        ChatLease,
        ChatPage,
        ChatSummary,
        JournalEvent,
        PendingInput,
        StoreStatistics,
        Termination,
        Turn,
    )


@dataclass(frozen=True, slots=True)
class AppendTurn:
    """A write of a group commit: `append_turn`."""

    chat_id: str
    turn: Turn
    lease: ChatLease | None


@dataclass(frozen=True, slots=True)
class StartChat:
    """A write of a group commit: `start_chat`."""

    definition: ChatDefinition
    owner: str
    ttl: float


@dataclass(frozen=True, slots=True)
class AcquireLease:
    """A write of a group commit: `acquire_lease`."""

    chat_id: str
    owner: str
    ttl: float


@dataclass(frozen=True, slots=True)
class ReleaseLease:
    """A write of a group commit: `release_lease`."""

    lease: ChatLease


@dataclass(frozen=True, slots=True)
class RenewLease:
    """A write of a group commit: `renew_lease`."""

    lease: ChatLease
    ttl: float


BatchOp: TypeAlias = "AppendTurn | StartChat | AcquireLease | ReleaseLease | RenewLease"

#: The journal's schema version this moot writes; older journals are migrated on open.
SCHEMA_VERSION = 2


class ChatStore(abc.ABC):
    """Where chats are journaled: definitions, turns, events, questions to humans and leases.

    Use it as `async with store:` (or `await store.open()` ... `await store.aclose()`). Writes that
    take a `lease` check it in the same transaction: a holder whose lease expired or was taken
    over gets `LeaseLostError` and writes nothing.
    """

    def __init__(self, *, limits: StoreLimits | None = None) -> None:
        self.limits = limits or StoreLimits()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and create or migrate the schema.

        Raises:
            StoreUnavailableError: the store cannot be reached or opened.
            SchemaVersionError: the journal was written by a newer moot.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close connections; idempotent."""

    # -- chats --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_chat(self, definition: ChatDefinition) -> None:
        """Journal a new chat (status running, no turns).

        Raises:
            ChatExistsError: the id is taken.
            InvalidRecordError: the definition is not JSON-able or too large.
        """

    @abc.abstractmethod
    async def definition(self, chat_id: str) -> ChatDefinition:
        """The chat's definition, to rebuild it in a fresh process.

        Raises:
            ChatNotFoundError: no such chat.
            CorruptRecordError: its row is not a definition.
        """

    @abc.abstractmethod
    async def summary(self, chat_id: str) -> ChatSummary:
        """The chat's status, turn count, tokens and cost.

        Raises:
            ChatNotFoundError: no such chat.
            CorruptRecordError: its row cannot be read.
        """

    @abc.abstractmethod
    async def list_chats(
        self, *, status: ChatStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> ChatPage:
        """A page of chats, newest first, optionally of one status.

        Raises:
            JournalConfigError: `limit` below 1 or a cursor this store did not hand out.
        """

    @abc.abstractmethod
    async def set_status(
        self,
        chat_id: str,
        status: ChatStatus,
        *,
        termination: Termination | None = None,
        lease: ChatLease | None = None,
    ) -> None:
        """Move the chat to `status` (finished/failed may carry the termination), with an event.

        Raises:
            ChatNotFoundError: no such chat.
            ChatFinishedError: the chat has finished or failed already.
            LeaseLostError: `lease` is no longer the chat's.
        """

    # -- turns --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def append_turn(
        self, chat_id: str, turn: Turn, *, lease: ChatLease | None = None
    ) -> None:
        """Journal a completed turn in one transaction: its row, new blobs, counters, an event.

        A turn with a `termination` finishes the chat in the same transaction.

        Raises:
            ChatNotFoundError: no such chat.
            ChatFinishedError: the chat has finished or failed.
            TurnOrderError: `turn.number` is not the chat's next one.
            RecordTooLargeError: a file, the row or the turn is over the limits.
            InvalidRecordError: the turn is not JSON-able or a path leaves the work dir.
            LeaseLostError: `lease` is no longer the chat's.
            StoreWriteError, StoreUnavailableError: the store failed; nothing was kept.
        """

    async def start_chat(
        self, definition: ChatDefinition, owner: str, *, ttl: float
    ) -> ChatLease | None:
        """Journal a new chat and lease it to `owner`, in one write; None if the chat exists
        already (then resume it: `summary`, `acquire_lease`, `turns`).

        Raises:
            InvalidRecordError: the definition is not JSON-able or too large.
            StoreWriteError, StoreUnavailableError: the store failed; nothing was kept.
        """
        try:
            await self.create_chat(definition)
        except ChatExistsError:
            return None
        return await self.acquire_lease(definition.chat_id, owner, ttl=ttl)

    async def write_batch(self, ops: Sequence[BatchOp]) -> list[Any]:
        """Group commit: run many chats' writes together; per op its result or its JournalError.

        This default runs them one by one; the SQL stores run a batch in one transaction, where
        an op refused by a check fails alone and a failure of the store fails the whole batch
        (raised, nothing kept).
        """
        outcome: list[Any] = []
        for op in ops:
            try:
                result: ChatLease | None = None
                if isinstance(op, AppendTurn):
                    await self.append_turn(op.chat_id, op.turn, lease=op.lease)
                elif isinstance(op, StartChat):
                    result = await self.start_chat(op.definition, op.owner, ttl=op.ttl)
                elif isinstance(op, AcquireLease):
                    result = await self.acquire_lease(op.chat_id, op.owner, ttl=op.ttl)
                elif isinstance(op, RenewLease):
                    result = await self.renew_lease(op.lease, ttl=op.ttl)
                else:
                    await self.release_lease(op.lease)
                outcome.append(result)
            except JournalError as exc:
                outcome.append(exc)
        return outcome

    @abc.abstractmethod
    async def turns(self, chat_id: str, *, after: int = 0) -> list[Turn]:
        """The chat's turns numbered above `after`, in order, with their files' contents.

        Raises:
            ChatNotFoundError: no such chat.
            CorruptRecordError: a row or blob of this chat cannot be read.
        """

    async def load_many(self, chat_ids: Sequence[str]) -> dict[str, list[Turn] | JournalError]:
        """Many chats' turns in one read (to resume them together): per chat id, its turns as
        `turns(chat_id)` gives them, or the typed error that chat alone gets
        (`ChatNotFoundError`, `CorruptRecordError`); one chat's bad row fails no other.

        This default reads them one by one; the SQL stores read them all in one transaction.

        Raises:
            StoreError, StoreUnavailableError: the store failed (for every chat).
        """
        loaded: dict[str, list[Turn] | JournalError] = {}
        for chat_id in dict.fromkeys(chat_ids):
            try:
                loaded[chat_id] = await self.turns(chat_id)
            except (ChatNotFoundError, CorruptRecordError) as exc:
                loaded[chat_id] = exc
        return loaded

    async def summaries(self, chat_ids: Sequence[str]) -> dict[str, ChatSummary | JournalError]:
        """Many chats' `summary` in one read: per chat id, its summary or its own typed error.

        Raises:
            StoreError, StoreUnavailableError: the store failed (for every chat).
        """
        found: dict[str, ChatSummary | JournalError] = {}
        for chat_id in dict.fromkeys(chat_ids):
            try:
                found[chat_id] = await self.summary(chat_id)
            except (ChatNotFoundError, CorruptRecordError) as exc:
                found[chat_id] = exc
        return found

    async def definitions(
        self, chat_ids: Sequence[str]
    ) -> dict[str, ChatDefinition | JournalError]:
        """Many chats' `definition` in one read: per chat id, its definition or its own error.

        Raises:
            StoreError, StoreUnavailableError: the store failed (for every chat).
        """
        found: dict[str, ChatDefinition | JournalError] = {}
        for chat_id in dict.fromkeys(chat_ids):
            try:
                found[chat_id] = await self.definition(chat_id)
            except (ChatNotFoundError, CorruptRecordError) as exc:
                found[chat_id] = exc
        return found

    @abc.abstractmethod
    async def blob(self, sha256: str) -> bytes:
        """A stored file content by its sha256.

        Raises:
            KeyError: no such blob (a `ChatNotFoundError` is not right: blobs are shared).
        """

    async def workspace(self, chat_id: str, *, upto: int | None = None) -> dict[str, bytes]:
        """The chat's work files after turn `upto` (default: the last), to restore a sandbox.

        Raises:
            ChatNotFoundError: no such chat.
            CorruptRecordError: a row or blob of this chat cannot be read.
        """
        files: dict[str, bytes] = {}
        for turn in await self.turns(chat_id):
            if upto is not None and turn.number > upto:
                break
            for change in turn.files:
                if change.data is None:
                    files.pop(change.path, None)
                else:
                    files[change.path] = change.data
        return files

    # -- events -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def append_event(self, chat_id: str, kind: str, data: Mapping[str, Any]) -> int:
        """Append an event to the chat's log and return its id (one more than the last).

        Raises:
            ChatNotFoundError: no such chat.
            InvalidRecordError: `data` is not JSON-able or too large.
        """

    @abc.abstractmethod
    async def events(
        self, chat_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[JournalEvent]:
        """The chat's events with ids above `after` (a Last-Event-ID), oldest first.

        Raises:
            ChatNotFoundError: no such chat.
            CorruptRecordError: an event row cannot be read.
        """

    # -- questions to humans ------------------------------------------------------------------

    @abc.abstractmethod
    async def ask_input(
        self, chat_id: str, prompt: str, *, lease: ChatLease | None = None
    ) -> PendingInput:
        """Journal a question for a human with a fresh single-use token; the chat waits.

        Raises:
            ChatNotFoundError: no such chat.
            ChatFinishedError: the chat has finished or failed.
            LeaseLostError: `lease` is no longer the chat's.
        """

    @abc.abstractmethod
    async def answer_input(self, token: str, answer: str) -> PendingInput:
        """Answer a question, exactly once; the chat runs again (resume it to go on).

        Raises:
            UnknownInputTokenError: no question carries the token.
            InputAlreadyAnsweredError: it was answered before (concurrent answers: one wins).
        """

    @abc.abstractmethod
    async def inputs(self, chat_id: str) -> list[PendingInput]:
        """The chat's questions, oldest first, answered or not.

        Raises:
            ChatNotFoundError: no such chat.
        """

    # -- leases -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def acquire_lease(self, chat_id: str, owner: str, *, ttl: float) -> ChatLease:
        """Take the right to write the chat for `ttl` seconds; an expired lease is taken over,
        and so is one held by the same `owner` (it comes back, e.g. after a store outage).

        Raises:
            ChatNotFoundError: no such chat.
            LeaseHeldError: another holder's lease has not expired (exactly one acquirer wins).
        """

    @abc.abstractmethod
    async def renew_lease(self, lease: ChatLease, *, ttl: float) -> ChatLease:
        """Extend a lease still held (expired but not taken over counts as held).

        Raises:
            LeaseLostError: someone else took the chat over, or the lease was released.
        """

    @abc.abstractmethod
    async def release_lease(self, lease: ChatLease) -> None:
        """Give the lease up (a no-op if it was lost already)."""

    # -- the store ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def statistics(self) -> StoreStatistics:
        """Counts and bytes held, for benchmarks and tools."""


def check_page_limit(limit: int) -> None:
    """Raises: JournalConfigError: `limit` below 1."""
    from ._errors import JournalConfigError

    if limit < 1:
        raise JournalConfigError(f"A page holds at least one chat, not {limit}.", setting="limit")


def encode_cursor(summary: ChatSummary) -> str:
    return f"{summary.created_at!r}|{summary.chat_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises: JournalConfigError: the cursor was not handed out by `list_chats`."""
    from ._errors import JournalConfigError

    created, sep, chat_id = cursor.partition("|")
    try:
        if not sep:
            raise ValueError(cursor)
        return float(created), chat_id
    except ValueError:
        raise JournalConfigError(f"Not a chat list cursor: {cursor!r}.", setting="cursor") from None


TERMINAL = frozenset({ChatStatus.FINISHED, ChatStatus.FAILED})
