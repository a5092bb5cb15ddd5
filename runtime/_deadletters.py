"""Dead letters: accepted messages that no handler took, each with a reason, counted and kept."""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._envelope import Envelope
    from ._ids import AgentId


class DeadLetterReason(enum.Enum):
    """Why a message was not handled."""

    NO_SUCH_AGENT_TYPE = "no_such_agent_type"
    NO_HANDLER = "no_handler"
    MAILBOX_FULL = "mailbox_full"  # a fail-fast publish found a recipient's mailbox full
    NO_SUBSCRIBERS = "no_subscribers"
    HANDLER_FAILED = "handler_failed"
    AGENT_STOPPED = "agent_stopped"
    DROPPED_BY_INTERCEPTOR = "dropped_by_interceptor"
    RUNTIME_STOPPING = "runtime_stopping"
    UNDELIVERABLE = "undeliverable"  # a transport could not carry it (remote node gone, bad type)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """One unhandled delivery: the envelope, the agent it was for, why, and the error if any."""

    envelope: Envelope
    recipient: AgentId | None
    reason: DeadLetterReason
    detail: str = ""
    error: BaseException | None = None


DeadLetterSink = Callable[[DeadLetter], None]
"""Receives every dead letter as it happens (e.g. to log, alert, or persist)."""


class DeadLetterLog:
    """Default sink: counts by reason and keeps the most recent letters (bounded)."""

    def __init__(self, keep: int = 1000) -> None:
        self.counts: Counter[DeadLetterReason] = Counter()
        self.recent: deque[DeadLetter] = deque(maxlen=keep)

    def __call__(self, letter: DeadLetter) -> None:
        self.counts[letter.reason] += 1
        self.recent.append(letter)

    @property
    def total(self) -> int:
        """All dead letters seen so far."""
        return sum(self.counts.values())
