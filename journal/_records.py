"""The journal's records: what a chat's definition and each of its turns keep.

Plain frozen values; the stores turn them into rows and back (`_rows`), so nothing here knows
about JSON or SQL. Every value a record holds is JSON-able except file contents (bytes).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

MiB = 1024 * 1024


class ChatStatus(enum.StrEnum):
    """Where a journaled chat stands."""

    RUNNING = "running"  # taking turns (or interrupted mid-turn: resume it)
    WAITING = "waiting"  # a question to a human is open; nothing runs until it is answered
    FINISHED = "finished"  # ended by its termination condition
    FAILED = "failed"  # ended by an error it could not get past


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatDefinition:
    """Enough for a fresh process to rebuild the chat: who takes part, who picks, the limits.

    `spec` holds whatever else the chat layer needs (system messages, model names, the
    initiating message); it must be JSON-able.
    """

    chat_id: str
    participants: tuple[str, ...]
    policy: str
    limits: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The speaker selector's decision for a turn: which policy chose whom, among whom."""

    policy: str
    chosen: str
    candidates: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Tokens and cost of the model calls made for one turn."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    model: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A tool call the model asked for (arguments as the model wrote them, a JSON string)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult:
    """What running a tool call gave back."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeRun:
    """One code block run in the chat's sandbox."""

    language: str
    code: str
    exit_code: int
    output: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FileChange:
    """A work file the turn wrote (`data`) or deleted (`data is None`), by relative path."""

    path: str
    data: bytes | None

    @property
    def sha256(self) -> str | None:
        return None if self.data is None else hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Termination:
    """Why a chat ended: the condition (e.g. "max_turns", "is_termination_msg") and detail."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One completed turn: journaled before the next speaker is asked.

    `number` counts from 1; a turn with a `termination` ends the chat.
    """

    number: int
    speaker: str
    message: dict[str, Any]
    decision: Decision | None = None
    usage: Usage = field(default_factory=Usage)
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    code_runs: tuple[CodeRun, ...] = ()
    files: tuple[FileChange, ...] = ()
    termination: Termination | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEvent:
    """One entry of a chat's append-only event log; `id` grows by one per event of the chat."""

    chat_id: str
    id: int
    kind: str
    data: dict[str, Any]
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingInput:
    """A question to a human; `token` is single-use: the first answer is the one applied."""

    chat_id: str
    token: str
    turn: int  # the number of the turn that will carry the answer
    prompt: str
    asked_at: float
    answer: str | None = None
    answered_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatLease:
    """The right to write a chat until `expires_at`; `fence` grows with each new holder."""

    chat_id: str
    owner: str
    token: str
    fence: int
    expires_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSummary:
    """One line of `list_chats`: where the chat stands and what it has spent."""

    chat_id: str
    status: ChatStatus
    turns: int
    tokens: int
    cost: float
    created_at: float
    updated_at: float
    termination: Termination | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatPage:
    """A page of chats, newest first; pass `next_cursor` to get the next one (None: the end)."""

    chats: tuple[ChatSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreLimits:
    """Size caps; past one, the write is refused with `RecordTooLargeError` and nothing is kept.

    `max_file_bytes` caps one work file, `max_turn_bytes` a whole turn (its row plus the files it
    writes), `max_row_bytes` any one JSON row (a turn without its files, a definition, an event).
    """

    max_file_bytes: int = 4 * MiB
    max_turn_bytes: int = 16 * MiB
    max_row_bytes: int = 1 * MiB


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreStatistics:
    """What the store holds, for benchmarks and `moot chats` (bytes as journaled)."""

    chats: int
    turns: int
    events: int
    blobs: int
    blob_bytes: int
    row_bytes: int
