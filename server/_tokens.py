"""A chat's wake-up signal and the streamed tokens of the turn it is taking.

Tokens are ephemeral: they live in memory until the turn is journaled (the turn event then
carries the whole message), so a reader that reconnects gets the durable events after its
`Last-Event-ID`, then the text streamed so far of the turn in progress, then live tokens.
"""

from __future__ import annotations

import asyncio


class Signal:
    """Wakes everyone waiting on one chat, without ever blocking the notifier.

    `version` counts the journal's changes; a wake-up for tokens leaves it alone, so a reader
    reads the journal again only when it changed.
    """

    __slots__ = ("_event", "version")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.version = 0

    def current(self) -> asyncio.Event:
        """Take this before reading, then wait on it if nothing was new."""
        return self._event

    def notify(self, *, journal: bool = True) -> None:
        if journal:
            self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()


class TokenBuffer:
    """The text streamed so far of the turn a chat is taking (never journaled).

    `generation` grows each time a turn is journaled (the buffer empties), so a reader knows
    that the parts it had sent belong to a turn whose whole message it gets as a turn event.
    """

    __slots__ = ("generation", "parts", "speaker", "turn")

    def __init__(self, turn: int = 1) -> None:
        self.generation = 0
        self.turn = turn  # the number the turn being streamed will have
        self.speaker = ""
        self.parts: list[str] = []

    def add(self, speaker: str, text: str) -> None:
        if speaker != self.speaker and self.parts:  # another speaker: a new answer
            self._restart()
        self.speaker = speaker
        self.parts.append(text)

    def turn_kept(self, number: int) -> None:
        """Turn `number` is being journaled: what streams next belongs to the one after it
        (told again for a turn passed already, it does nothing)."""
        if number < self.turn:
            return
        self.turn = number + 1
        self.speaker = ""
        self._restart()

    def _restart(self) -> None:
        self.generation += 1
        self.parts = []
