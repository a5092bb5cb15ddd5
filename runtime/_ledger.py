"""The delivery ledger: every delivery counter of a runtime, moved only here.

A delivery is counted once when the runtime takes responsibility for it (`accept`) and once when
it leaves (`settle`); what is in flight is the difference, so
`accepted == handled + errored + dead_lettered + in_flight` holds by construction, and a delivery
that is never settled stays visible as in flight. Refusals at the door never enter (`reject`).
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

    __slots__ = ("accepted", "dead_lettered", "drained", "errored", "handled", "rejected")

    def __init__(self) -> None:
        self.accepted = self.handled = self.errored = self.dead_lettered = self.rejected = 0
        self.drained: asyncio.Event | None = None  # set by `stop` while it waits for a drain

    @property
    def in_flight(self) -> int:
        """Accepted and not yet settled."""
        return self.accepted - self.handled - self.errored - self.dead_lettered

    def accept(self, count: int = 1) -> None:
        """The runtime took responsibility for `count` deliveries."""
        self.accepted += count

    def reject(self) -> None:
        """A message was refused at the door: its sender got the error at once."""
        self.rejected += 1

    def settle(self, outcome: Outcome, count: int = 1) -> None:
        """`count` accepted deliveries left the runtime with `outcome`; the only place they
        leave."""
        if outcome is HANDLED:
            self.handled += count
        elif outcome is ERRORED:
            self.errored += count
        else:
            self.dead_lettered += count
        if self.drained is not None and self.in_flight == 0:
            self.drained.set()
