"""The journal's errors: `JournalError` and its branch; the whole tree is drawn once, in
`moot.runtime._errors`.
"""

from __future__ import annotations

from moot.runtime import ConfigError, MootError


class JournalError(MootError):
    """Base of every error the chat journal raises on purpose."""


class JournalConfigError(JournalError, ConfigError):
    """A store URL, limit or option that cannot be used."""


class MissingDriverError(JournalError, ImportError):
    """The store needs a driver package that is not installed (`pip install 'moot[durable]'`)."""

    def __init__(self, message: str, *, package: str) -> None:
        super().__init__(message)
        self.package = package


class StoreError(JournalError):
    """The store itself failed; `store` names it (a URL without its password)."""

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message)
        self.store = store


class StoreUnavailableError(StoreError, ConnectionError):
    """The store cannot be reached or opened (at start, or lost mid-chat)."""


class StoreWriteError(StoreError):
    """A write failed inside the store; nothing of it was kept (each write is one transaction)."""


class SchemaVersionError(StoreError):
    """The journal was written by a newer moot: its schema version is above the supported one."""

    def __init__(self, message: str, *, store: str, found: int, supported: int) -> None:
        super().__init__(message, store=store)
        self.found = found
        self.supported = supported


class CorruptRecordError(JournalError):
    """A row read back is not a journal record (corrupt or foreign); only its chat is affected."""

    def __init__(self, message: str, *, chat_id: str, record: str) -> None:
        super().__init__(message)
        self.chat_id = chat_id
        self.record = record


class InvalidRecordError(JournalError, ValueError):
    """A record given to the store cannot be journaled (not JSON-able, a bad path or number)."""


class RecordTooLargeError(InvalidRecordError):
    """A file, a turn or a row is larger than the store's limit; nothing was written."""

    def __init__(self, message: str, *, what: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.what = what
        self.size = size
        self.limit = limit


class TurnOrderError(InvalidRecordError):
    """A turn's number is not the chat's next one (a repeat, or a gap)."""

    def __init__(self, message: str, *, chat_id: str, expected: int, got: int) -> None:
        super().__init__(message)
        self.chat_id = chat_id
        self.expected = expected
        self.got = got


class ChatNotFoundError(JournalError, LookupError):
    """No chat of that id is journaled."""

    def __init__(self, message: str, *, chat_id: str) -> None:
        super().__init__(message)
        self.chat_id = chat_id


class ChatExistsError(JournalError, ValueError):
    """A chat of that id is journaled already."""

    def __init__(self, message: str, *, chat_id: str) -> None:
        super().__init__(message)
        self.chat_id = chat_id


class ChatFinishedError(JournalError, RuntimeError):
    """The chat has finished (or failed); it takes no more turns or questions."""

    def __init__(self, message: str, *, chat_id: str) -> None:
        super().__init__(message)
        self.chat_id = chat_id


class LeaseError(JournalError):
    """A chat's lease (who may write it now) stands in the way."""

    def __init__(self, message: str, *, chat_id: str) -> None:
        super().__init__(message)
        self.chat_id = chat_id


class LeaseHeldError(LeaseError):
    """Another owner holds the chat's lease and it has not expired."""

    def __init__(self, message: str, *, chat_id: str, owner: str, expires_at: float) -> None:
        super().__init__(message, chat_id=chat_id)
        self.owner = owner
        self.expires_at = expires_at


class LeaseLostError(LeaseError):
    """The caller's lease expired or was taken over; it may no longer write the chat."""


class InputTokenError(JournalError):
    """A question to a human cannot be answered as asked."""

    def __init__(self, message: str, *, token: str) -> None:
        super().__init__(message)
        self.token = token


class UnknownInputTokenError(InputTokenError, LookupError):
    """No question carries that token."""


class InputAlreadyAnsweredError(InputTokenError):
    """The question was answered before; an answer is applied exactly once."""
