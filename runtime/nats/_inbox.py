"""Replies and stream acks over one wildcard subscription each, matched by a counter token.

nats-py's `request` and `publish_async` make a random token, a closure and an `asyncio.wait_for`
per message; on the hot paths (a send with 100 in flight, the deliveries of a publish) that is
most of the transport's own cost. Here a reply is matched by an integer token in a dict, a send
times out through one timer handle, and the pending acks of publishes share one timer and one
window of bounded size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable

_STATUS: Final = "Status"  # the header a server status comes in (nats.js.api.Header.STATUS)
_NO_RESPONDERS: Final = "503"


def no_responders(msg: Any) -> bool:
    """True for the server's "no responders" status message (a reply nobody could give)."""
    headers = msg.headers
    return bool(headers) and headers.get(_STATUS) == _NO_RESPONDERS


class Replies:
    """Futures waiting for a reply on `<inbox>.<token>`; `on_reply` is the subscription's cb."""

    def __init__(self, inbox: str) -> None:
        self.prefix = inbox + "."
        self._cut = len(self.prefix)
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._next = 0

    @property
    def subject(self) -> str:
        """The wildcard to subscribe to."""
        return self.prefix + "*"

    def expect(self) -> tuple[str, asyncio.Future[Any]]:
        """A reply subject and the future its reply (a nats-py `Msg`) resolves; then `forget`."""
        self._next += 1
        token = str(self._next)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        return self.prefix + token, future

    def forget(self, reply_to: str) -> None:
        self._waiting.pop(reply_to[self._cut :], None)

    def __len__(self) -> int:
        return len(self._waiting)

    async def on_reply(self, msg: Any) -> None:
        future = self._waiting.pop(msg.subject[self._cut :], None)
        if future is not None and not future.done():
            future.set_result(msg)


class PendingAck:
    """One durable delivery whose stream ack has not come yet: enough to send it again."""

    __slots__ = ("attempts", "deadline", "envelope", "headers", "payload", "subject", "token")

    def __init__(
        self, subject: str, payload: bytes, headers: dict[str, str], envelope: Any
    ) -> None:
        self.subject = subject
        self.payload = payload
        self.headers = headers
        self.envelope = envelope
        self.attempts = 0
        self.deadline = 0.0
        self.token = ""


class AckWindow:
    """At most `size` durable publishes awaiting the stream's ack, each for at most `timeout`.

    `add` files a delivery under a fresh reply subject; `on_ack` (the subscription's cb) settles
    it. A negative ack, a "no stream" status or a timeout hands the delivery to `failed`, which
    sends it again or reports it; either way its room in the window is kept until `done`.
    """

    def __init__(
        self,
        inbox: str,
        size: int,
        timeout: float,
        failed: Callable[[PendingAck], None],
    ) -> None:
        self.prefix = inbox + "."
        self._cut = len(self.prefix)
        self.size = size
        self.timeout = timeout
        self._failed = failed
        self._pending: dict[str, PendingAck] = {}  # by token: sent, ack not yet in
        # (deadline, token, delivery) in send order, which is deadline order; an entry whose
        # token is no longer the delivery's is settled or was sent again (skipped when met).
        self._order: deque[tuple[float, str, PendingAck]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._held = 0  # deliveries in the window, including those being sent again
        self._room: deque[asyncio.Future[None]] = deque()
        self._empty = asyncio.Event()
        self._empty.set()
        self._next = 0

    @property
    def subject(self) -> str:
        return self.prefix + "*"

    @property
    def held(self) -> int:
        """Deliveries in the window (sent and unconfirmed, or being sent again)."""
        return self._held

    async def enter(self) -> None:
        """Take a place in the window, waiting while it is full."""
        if self._held >= self.size or self._room:
            future = asyncio.get_running_loop().create_future()
            self._room.append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._hand_on()  # we were given a place we will not use
                else:
                    self._room.remove(future)
                raise
        else:
            self._held += 1
        self._empty.clear()

    def leave(self) -> None:
        """Give a place back: its delivery is confirmed, reported, or was never sent."""
        if self._room:
            self._hand_on()
            return
        self._held -= 1
        if not self._held:
            self._empty.set()

    def _hand_on(self) -> None:
        while self._room:
            waiter = self._room.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._held -= 1
        if not self._held:
            self._empty.set()

    def add(self, pending: PendingAck) -> str:
        """File `pending` (already inside the window) and return the reply subject to send with."""
        self._next += 1
        token = pending.token = str(self._next)
        pending.attempts += 1
        loop = asyncio.get_running_loop()
        pending.deadline = loop.time() + self.timeout
        self._pending[token] = pending
        self._order.append((pending.deadline, token, pending))
        if self._timer is None:
            self._timer = loop.call_at(pending.deadline, self._expire)
        return self.prefix + token

    def withdraw(self, pending: PendingAck) -> None:
        """The send itself failed: drop the filing (the caller gives the place back)."""
        self._pending.pop(pending.token, None)
        pending.token = ""

    async def on_ack(self, msg: Any) -> None:
        pending = self._pending.pop(msg.subject[self._cut :], None)
        if pending is None:
            return  # a late ack of an attempt that already timed out
        pending.token = ""
        order = self._order
        while order and order[0][2].token != order[0][1]:
            order.popleft()  # acks come mostly in order: keep the queue short
        if no_responders(msg) or b'"error"' in msg.data:
            self._failed(pending)
        else:
            self.leave()

    def _expire(self) -> None:
        self._timer = None
        order = self._order
        now = asyncio.get_running_loop().time()
        while order:
            deadline, token, pending = order[0]
            live = pending.token == token
            if live and deadline > now:
                self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)
                return
            order.popleft()
            if live:
                del self._pending[token]
                pending.token = ""
                self._failed(pending)

    async def wait_empty(self) -> None:
        """Return once every delivery in the window is confirmed or reported."""
        await self._empty.wait()

    def abandon(self) -> list[PendingAck]:
        """Stop the timer and return the unconfirmed deliveries (the transport is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        left = list(self._pending.values())
        for pending in left:
            pending.token = ""
        self._pending.clear()
        self._order.clear()
        return left
