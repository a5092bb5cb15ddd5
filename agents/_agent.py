"""`Agent`: AutoGen's base type for anything that takes part in a conversation.

AutoGen code names it in type hints and in reply triggers (`register_reply([Agent, None], f)`),
so every `ConversableAgent` is one. A class of your own may subclass it for typing; only
`ConversableAgent`s can chat with each other.
"""

from __future__ import annotations


class Agent:
    """The common base of moot's classic agents: a name and a description."""

    name: str
    description: str

    def __init__(self, name: str, description: str = "") -> None:
        self.name = name
        self.description = description

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
