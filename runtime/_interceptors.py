"""Interceptors: middleware around send, publish and handle, all with the one `Handler` shape.

Each stage is `async def stage(envelope, call_next) -> reply`. To change a message, call
`call_next(dataclasses.replace(envelope, message=...))`; to drop it, raise `DropMessage(reason)`:
the runtime dead-letters it and a waiting caller gets `MessageDroppedError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import MootError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._envelope import Envelope, Handler


class DropMessage(MootError):
    """Raised by an interceptor to drop the message it was given."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Interceptor:
    """Base interceptor: every stage passes through. Override the stages you need."""

    async def on_send(self, envelope: Envelope, call_next: Handler) -> Any:
        """Around a direct send or tell, on the sender's side, before routing."""
        return await call_next(envelope)

    async def on_publish(self, envelope: Envelope, call_next: Handler) -> Any:
        """Around a publish, on the publisher's side, before fan-out."""
        return await call_next(envelope)

    async def on_handle(self, envelope: Envelope, call_next: Handler) -> Any:
        """Around the recipient's handler, inside the recipient's turn."""
        return await call_next(envelope)


def chain(interceptors: Sequence[Interceptor], stage: str, core: Handler) -> Handler:
    """Fold `interceptors` around `core` for one stage; the first interceptor is outermost."""
    handler = core
    for interceptor in reversed(interceptors):
        method = getattr(interceptor, stage)
        handler = _bind(method, handler)
    return handler


def _bind(method: Callable[[Envelope, Handler], Awaitable[Any]], call_next: Handler) -> Handler:
    async def staged(envelope: Envelope) -> Any:
        return await method(envelope, call_next)

    return staged
