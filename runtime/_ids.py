"""Addresses: `AgentId(type, key)` names one actor; `TopicId(type, source)` names a topic."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._errors import InvalidIdError

# Types are identifiers-with-dots-and-dashes so they can become NATS subject tokens and log keys.
_TYPE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _check_type(kind: str, value: object) -> None:
    if not isinstance(value, str) or not _TYPE_RE.match(value):
        raise InvalidIdError(
            f"{kind} type must be a non-empty string of letters, digits, '_', '-' or '.',"
            f" starting with a letter or '_'; got {value!r}"
        )


def _check_key(kind: str, field: str, value: object) -> None:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise InvalidIdError(f"{kind} {field} must be a non-empty printable string; got {value!r}")


@dataclass(frozen=True, slots=True)
class AgentId:
    """One actor: its registered `type` and the `key` of the instance (e.g. a chat id)."""

    type: str
    key: str = "default"
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        _check_type("agent", self.type)
        _check_key("agent", "key", self.key)
        object.__setattr__(self, "_hash", hash((self.type, self.key)))

    def __hash__(self) -> int:  # cached: ids are dict keys on every delivery
        return self._hash

    def __str__(self) -> str:
        return f"{self.type}/{self.key}"

    @classmethod
    def parse(cls, text: str) -> AgentId:
        """Read the `type/key` form that `str()` writes.

        Raises:
            InvalidIdError: the text has no `/` or an invalid part.
        """
        agent_type, sep, key = text.partition("/")
        if not sep:
            raise InvalidIdError(f"expected 'type/key', got {text!r}")
        return cls(agent_type, key)


@dataclass(frozen=True, slots=True)
class TopicId:
    """A topic: its `type` (what subscriptions match) and `source` (the key it routes to)."""

    type: str
    source: str = "default"

    def __post_init__(self) -> None:
        _check_type("topic", self.type)
        _check_key("topic", "source", self.source)

    def __str__(self) -> str:
        return f"{self.type}/{self.source}"
