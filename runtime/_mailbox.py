"""A bounded FIFO mailbox: senders wait for room (with a deadline) or fail fast when it is full."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ._clock import AsyncioClock, Clock
from ._errors import AgentStoppedError, ConfigError, DeadlineExceededError, MailboxFullError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._ids import AgentId

T = TypeVar("T")
_LOOP_CLOCK = AsyncioClock()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxStatistics:
    """A snapshot of one mailbox."""

    depth: int  # messages waiting to be handled
    capacity: int  # the most it holds; senders beyond it wait or fail fast
    waiting_senders: int  # senders suspended in `put` until room frees up


class Mailbox(Generic[T]):
    """Bounded, arrival-ordered queue for one actor. Its deque exists only while it holds items.

    The mailbox never wakes its consumer itself: `on_ready` is called when it goes from empty to
    non-empty so the owner can schedule work, which lets an idle actor live without a task. The
    owner must re-check `len()` when its consumer stops, since items may arrive meanwhile.
    """

    __slots__ = ("_closed", "_items", "_putters", "agent_id", "capacity", "clock", "on_ready")

    def __init__(
        self,
        capacity: int,
        agent_id: AgentId,
        on_ready: Callable[[], None] | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        if capacity < 1:
            raise ConfigError(
                f"mailbox capacity must be at least 1, got {capacity}", setting="capacity"
            )
        self.capacity = capacity
        self.clock = clock or _LOOP_CLOCK
        self.agent_id = agent_id
        self.on_ready = on_ready
        self._items: deque[T] | None = None
        self._putters: deque[asyncio.Future[None]] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    def statistics(self) -> MailboxStatistics:
        """Depth, capacity and waiting senders, as of now."""
        waiting = sum(1 for f in self._putters if not f.done()) if self._putters else 0
        return MailboxStatistics(depth=len(self), capacity=self.capacity, waiting_senders=waiting)

    def put_nowait(self, item: T) -> None:
        """Append `item`, or refuse at once.

        Raises:
            MailboxFullError: the mailbox is at capacity.
            AgentStoppedError: the mailbox is closed.
        """
        if self.try_put(item):
            return
        if self._closed:
            raise AgentStoppedError(f"agent {self.agent_id} has stopped", agent_id=self.agent_id)
        raise MailboxFullError(
            f"mailbox of {self.agent_id} is full ({self.capacity} messages)",
            agent_id=self.agent_id,
        )

    def try_put(self, item: T) -> bool:
        """Append `item` if the mailbox is open and has room; False otherwise. Never raises."""
        items = self._items
        if items is not None:  # a closed mailbox has no deque, so this one is open
            depth = len(items)
            if depth >= self.capacity:
                return False
            items.append(item)
            if depth == 0 and self.on_ready is not None:
                self.on_ready()
            return True
        if self._closed:
            return False
        self._items = deque((item,))
        if self.on_ready is not None:
            self.on_ready()
        return True

    def put_system(self, item: T) -> None:
        """Append an item that must not be refused (runtime housekeeping), ignoring capacity.
        A closed mailbox drops it: its owner has stopped or handed over to a successor."""
        if self._closed:
            return
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        if self.on_ready is not None:
            self.on_ready()

    async def put(self, item: T, *, deadline: float | None = None) -> None:
        """Append `item`, waiting in line for room until `deadline` (on this mailbox's clock).

        Raises:
            DeadlineExceededError: no room freed up in time.
            AgentStoppedError: the mailbox closed while waiting.
        """
        woken = False
        while True:
            if self._closed:
                raise AgentStoppedError(
                    f"agent {self.agent_id} has stopped", agent_id=self.agent_id
                )
            if len(self) < self.capacity and (woken or not self._has_waiters_ahead()):
                self.put_nowait(item)
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._putters is None:
                self._putters = deque()
            self._putters.append(waiter)
            timer = None if deadline is None else self.clock.call_at(deadline, _expire, waiter)
            try:
                await waiter
            except TimeoutError:
                raise DeadlineExceededError(
                    f"no room in the mailbox of {self.agent_id} before the deadline",
                    agent_id=self.agent_id,
                ) from None
            finally:
                if timer is not None:
                    timer.cancel()
                if not waiter.done():
                    waiter.cancel()
                self._forget(waiter)
            woken = True
            # Woken: room was freed (or the box closed). Re-check from the top; if another
            # sender took the room first, wait again rather than fail.

    def _has_waiters_ahead(self) -> bool:
        return bool(self._putters) and any(not f.done() for f in self._putters or ())

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        if self._putters is not None:
            try:
                self._putters.remove(waiter)
            except ValueError:
                pass
            if not self._putters:
                self._putters = None

    def _wake_next_putter(self) -> None:
        if self._putters is None or self._items is None:
            return
        if len(self._items) >= self.capacity:
            return
        for waiter in self._putters:
            if not waiter.done():
                waiter.set_result(None)
                return

    def get_nowait(self) -> T | None:
        """Take the oldest item, or None when empty (releasing the deque's memory)."""
        items = self._items
        if not items:
            self._items = None
            return None
        item = items.popleft()
        if self._putters is not None:
            self._wake_next_putter()
        elif not items:
            self._items = None  # an idle actor waiting on its turn holds no deque (~600 bytes)
        return item

    def close(self) -> list[T]:
        """Refuse further items, fail waiting senders, and hand back what was still queued."""
        self._closed = True
        left = list(self._items or ())
        self._items = None
        for waiter in self._putters or ():
            if not waiter.done():
                waiter.set_result(None)  # the waiter re-checks `_closed` and raises
        return left

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return self._closed
