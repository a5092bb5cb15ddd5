"""The delivery ledger: every delivery counter of a runtime, moved only here.

A delivery is counted once when the runtime takes responsibility for it (`accept`) and once when
it leaves (`settle`), so `accepted == handled + errored + dead_lettered + in_flight` holds at every
await point. Refusals at the door never enter (`reject`).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio


class Outcome(enum.Enum):
    """How an accepted delivery left the runtime."""

    HANDLED = "handled"  # a handler completed it (and its caller, if any, got the result)
    ERRORED = "errored"  # its caller got a typed error (or stopped waiting) instead of a result
    DEAD_LETTERED = "dead_lettered"  # a fire-and-forget delivery that failed: a dead letter


HANDLED = Outcome.HANDLED
ERRORED = Outcome.ERRORED
DEAD_LETTERED = Outcome.DEAD_LETTERED


class Ledger:
    """Counts deliveries in and out; `drained` is set when the last one in flight settles."""

    __slots__ = (
        "accepted",
        "dead_lettered",
        "drained",
        "errored",
        "handled",
        "in_flight",
        "rejected",
    )

    def __init__(self) -> None:
        self.accepted = self.handled = self.errored = self.dead_lettered = 0
        self.rejected = self.in_flight = 0
        self.drained: asyncio.Event | None = None  # set by `stop` while it waits for a drain

    def accept(self, count: int = 1) -> None:
        """The runtime took responsibility for `count` deliveries."""
        self.accepted += count
        self.in_flight += count

    def reject(self) -> None:
        """A message was refused at the door: its sender got the error at once."""
        self.rejected += 1

    def settle(self, outcome: Outcome) -> None:
        """One accepted delivery left the runtime with `outcome`; the only place it leaves."""
        if outcome is HANDLED:
            self.handled += 1
        elif outcome is ERRORED:
            self.errored += 1
        else:
            self.dead_lettered += 1
        self.in_flight -= 1
        if self.in_flight == 0 and self.drained is not None:
            self.drained.set()
