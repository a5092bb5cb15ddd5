"""Live feeds: a reader in one process receives a stream of payloads another process writes,
in order, none lost, with backpressure (e.g. a chat's events, as they happen).

The reader subscribes to its own subject (`<prefix>.feed.<random>`) and names it to the writer.
The writer sends each payload as a NATS request and waits for the reader's ack before the next:
so payloads arrive in order, a slow reader slows its writer (never anyone else), and a payload
is either acked (handled) or the writer knows the reader is gone (`send` answers False) and
can keep the rest for another way back. Nothing is buffered on the broker.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

log = structlog.get_logger("moot.runtime.nats")


class FeedReader:
    """The reading end of one feed: `subject` is what the writer needs; `aclose` unsubscribes.

    `handler` runs once per payload, one at a time in the order written; the writer waits for
    it to return (its ack) before it sends the next payload.
    """

    def __init__(self, subject: str, subscription: Any) -> None:
        self.subject = subject
        self._subscription = subscription

    async def aclose(self) -> None:
        """Stop reading; a writer still sending hears that the reader is gone."""
        with contextlib.suppress(Exception):
            await self._subscription.unsubscribe()

    async def __aenter__(self) -> FeedReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def open_feed(
    nc: Any, prefix: str, handler: Callable[[bytes], Awaitable[None]]
) -> FeedReader:
    """Subscribe a new feed subject on connection `nc`; each payload goes to `handler`."""
    subject = f"{prefix}.feed.{os.urandom(9).hex()}"

    async def on_payload(msg: Any) -> None:
        try:
            await handler(msg.data)
        except Exception as exc:  # the reader failed on it: the writer keeps it
            log.warning("nats.feed_handler_failed", subject=subject, error=repr(exc))
            return
        if msg.reply:
            await nc.publish(msg.reply, b"")

    subscription = await nc.subscribe(subject, cb=on_payload, pending_msgs_limit=0)
    return FeedReader(subject, subscription)


async def send_to_feed(nc: Any, subject: str, payload: bytes, *, timeout: float) -> bool:
    """Send one payload and wait for the reader's ack: False when it did not come (no reader,
    the reader failed on it, or it was slower than `timeout`)."""
    import nats.errors

    try:
        await nc.request(subject, payload, timeout=timeout)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return False
    except (
        nats.errors.MaxPayloadError,
        nats.errors.OutboundBufferLimitError,
        nats.errors.ConnectionClosedError,
    ) as exc:
        log.warning("nats.feed_send_failed", subject=subject, error=repr(exc))
        return False
    return True
