"""Termination conditions: small objects that look at a chat and say whether, and why, it ends.

A condition reads only the chat it is given, so one object serves every chat at once. They
compose: `a | b` ends when either does, `a & b` when both hold at the same message. The chat's
result carries the `StopReason` of the condition that fired.

The manager checks its condition after each message joins the history.
"""

from __future__ import annotations

import abc
import re
from typing import TYPE_CHECKING, Any

from ._errors import GroupChatConfigError
from ._state import GroupChatState, StopReason, content_text, handoff_target

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence


class Termination(abc.ABC):
    """One condition that can end a chat. Subclasses implement `check`."""

    @abc.abstractmethod
    def check(self, chat: GroupChatState) -> StopReason | None:
        """The reason to stop now, or None to go on."""

    def __or__(self, other: Termination) -> Termination:
        return AnyOf(self, other)

    def __and__(self, other: Termination) -> Termination:
        return AllOf(self, other)

    def _stop(self, detail: str) -> StopReason:
        return StopReason(condition=type(self).__name__, detail=detail)


class AnyOf(Termination):
    """Ends when any of its conditions does; the first one (in order) gives the reason."""

    conditions: tuple[Termination, ...]

    def __init__(self, *conditions: Termination) -> None:
        flat: list[Termination] = []
        for condition in conditions:
            flat.extend(condition.conditions if isinstance(condition, AnyOf) else (condition,))
        self.conditions = tuple(flat)

    def check(self, chat: GroupChatState) -> StopReason | None:
        for condition in self.conditions:
            reason = condition.check(chat)
            if reason is not None:
                return reason
        return None

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.conditions))


class AllOf(Termination):
    """Ends when all of its conditions hold at the same check; the reason lists them all."""

    conditions: tuple[Termination, ...]

    def __init__(self, *conditions: Termination) -> None:
        flat: list[Termination] = []
        for condition in conditions:
            flat.extend(condition.conditions if isinstance(condition, AllOf) else (condition,))
        self.conditions = tuple(flat)

    def check(self, chat: GroupChatState) -> StopReason | None:
        reasons = []
        for condition in self.conditions:
            reason = condition.check(chat)
            if reason is None:
                return None
            reasons.append(reason)
        return StopReason(
            condition=" & ".join(r.condition for r in reasons),
            detail="; ".join(r.detail for r in reasons),
        )

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self.conditions)) + ")"


class MaxMessages(Termination):
    """Ends once `limit` messages were added in this run (the opening message counts).

    This is AutoGen's `max_round`: `GroupChat(max_round=10)` allows the task plus nine replies.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise GroupChatConfigError(
                f"MaxMessages needs a limit of at least 1, got {limit}", setting="limit"
            )
        self.limit = limit

    def check(self, chat: GroupChatState) -> StopReason | None:
        if chat.message_count >= self.limit:
            return self._stop(f"reached the maximum of {self.limit} messages")
        return None

    def __repr__(self) -> str:
        return f"MaxMessages({self.limit})"


class MaxTurns(Termination):
    """Ends once participants have spoken `limit` times in this run."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise GroupChatConfigError(
                f"MaxTurns needs a limit of at least 1, got {limit}", setting="limit"
            )
        self.limit = limit

    def check(self, chat: GroupChatState) -> StopReason | None:
        if chat.turns >= self.limit:
            return self._stop(f"reached the maximum of {self.limit} turns")
        return None

    def __repr__(self) -> str:
        return f"MaxTurns({self.limit})"


class TextMention(Termination):
    """Ends when the last message mentions `text` (by default the word TERMINATE).

    With `at_end=True` the text must close the message (trailing punctuation allowed), which
    is moot's default `is_termination_msg`.
    """

    def __init__(
        self, text: str = "TERMINATE", *, sources: Sequence[str] | None = None, at_end: bool = False
    ) -> None:
        if not text:
            raise GroupChatConfigError("TextMention needs a non-empty text", setting="text")
        self.text = text
        self.sources = None if sources is None else frozenset(sources)
        self.at_end = at_end
        self._pattern = re.compile(
            r"(?<!\w)" + re.escape(text) + (r"(?!\w)[\W_]*\Z" if at_end else r"(?!\w)")
        )

    def check(self, chat: GroupChatState) -> StopReason | None:
        message = chat.last_message
        if message is None or (
            self.sources is not None and message.get("name") not in self.sources
        ):
            return None
        if self._pattern.search(content_text(message).strip()):
            return self._stop(f"{message.get('name') or 'a message'} said {self.text}")
        return None

    def __repr__(self) -> str:
        return f"TextMention({self.text!r})"


class MessagePredicate(Termination):
    """Ends when `predicate(last_message)` is true: AutoGen's `is_termination_msg`."""

    def __init__(
        self, predicate: Callable[[dict[str, Any]], bool], *, name: str = "is_termination_msg"
    ) -> None:
        self.predicate = predicate
        self.name = name

    def check(self, chat: GroupChatState) -> StopReason | None:
        message = chat.last_message
        if message is not None and self.predicate(message):
            return self._stop(f"{self.name} accepted the message of {message.get('name')}")
        return None

    def __repr__(self) -> str:
        return f"MessagePredicate({self.name})"


class TokenBudget(Termination):
    """Ends once the chat's model calls (participants and selector) used `max_tokens` tokens."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def check(self, chat: GroupChatState) -> StopReason | None:
        if chat.usage.total_tokens >= self.max_tokens:
            return self._stop(
                f"used {chat.usage.total_tokens} tokens of a budget of {self.max_tokens}"
            )
        return None


class CostBudget(Termination):
    """Ends once the chat's model calls cost `max_dollars` or more."""

    def __init__(self, max_dollars: float) -> None:
        self.max_dollars = max_dollars

    def check(self, chat: GroupChatState) -> StopReason | None:
        if chat.cost >= self.max_dollars:
            return self._stop(f"spent ${chat.cost:.4f} of a budget of ${self.max_dollars:.4f}")
        return None


class TimeLimit(Termination):
    """Ends at the first message after `seconds` of wall-clock time since the run began."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def check(self, chat: GroupChatState) -> StopReason | None:
        if chat.elapsed >= self.seconds:
            return self._stop(f"ran for {chat.elapsed:.3f} s, past the limit of {self.seconds} s")
        return None


class StopHandle:
    """A switch the caller flips to stop chats; every chat watching it ends at its next message."""

    __slots__ = ("reason",)

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str = "stopped by the caller") -> None:
        """Ask the chats to stop; the first reason given is kept."""
        if self.reason is None:
            self.reason = reason

    @property
    def is_set(self) -> bool:
        return self.reason is not None


class ExternalStop(Termination):
    """Ends when its `StopHandle` has been set."""

    def __init__(self, handle: StopHandle | None = None) -> None:
        self.handle = handle or StopHandle()

    def set(self, reason: str = "stopped by the caller") -> None:
        """Shortcut for `handle.set(reason)`."""
        self.handle.set(reason)

    def check(self, chat: GroupChatState) -> StopReason | None:
        reason = self.handle.reason
        return None if reason is None else self._stop(reason)


class SourceMatch(Termination):
    """Ends after one of `sources` has spoken."""

    def __init__(self, sources: str | Sequence[str]) -> None:
        self.sources = frozenset([sources] if isinstance(sources, str) else sources)

    def check(self, chat: GroupChatState) -> StopReason | None:
        message = chat.last_message
        if chat.turns and message is not None and message.get("name") in self.sources:
            return self._stop(f"{message.get('name')} spoke")
        return None


class HandoffTermination(Termination):
    """Ends when a message hands the turn to `target` (usually the human user)."""

    def __init__(self, target: str = "user") -> None:
        self.target = target

    def check(self, chat: GroupChatState) -> StopReason | None:
        message = chat.last_message
        if handoff_target(message) == self.target:
            return self._stop(f"{chat.last_speaker} handed off to {self.target}")
        return None


class LoopDetection(Termination):
    """Ends when the chat goes round in circles: the same message `repeats` times in a row, or
    the same two speakers trading the same two messages `repeats` times (a ping-pong).

    Only the tail of the history is read, so the check costs the same at any length.
    """

    def __init__(self, repeats: int = 3, *, ping_pong: bool = True) -> None:
        if repeats < 2:
            raise GroupChatConfigError(
                f"LoopDetection needs repeats of at least 2, got {repeats}", setting="repeats"
            )
        self.repeats = repeats
        self.ping_pong = ping_pong

    def check(self, chat: GroupChatState) -> StopReason | None:
        messages = chat.messages
        n = self.repeats
        if chat.message_count >= n:
            tail = messages[-n:]
            text = content_text(tail[-1]).strip()
            if text and all(content_text(m).strip() == text for m in tail[:-1]):
                return self._stop(f"the same message was repeated {n} times: {text[:60]!r}")
        if self.ping_pong and chat.message_count >= 2 * n:
            tail = messages[-2 * n :]
            a, b = _key(tail[0]), _key(tail[1])
            if a[0] != b[0] and all(
                _key(m) == (a if i % 2 == 0 else b) for i, m in enumerate(tail)
            ):
                return self._stop(f"{a[0]} and {b[0]} exchanged the same two messages {n} times")
        return None


def _key(message: Mapping[str, Any]) -> tuple[Any, str]:
    return message.get("name"), content_text(message).strip()
