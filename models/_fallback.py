"""`FallbackClient`: asks each client in turn until one answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from ._errors import LLMConfigError, ModelError
from ._types import ModelClient

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._http import ConnectionPool
    from ._types import ModelRequest, ModelResponse

log = structlog.get_logger("moot.models.fallback")


class FallbackClient(ModelClient):
    """Asks each client in turn; the next one gets the call when one fails with a `ModelError`.

    The error of the last client is raised, with the earlier failures in its notes. Cancellation
    and programming errors are not failures here and propagate at once. `aclose()` closes every
    client, then `pool` (the connections they share), if given.
    """

    def __init__(
        self, clients: Sequence[ModelClient], *, pool: ConnectionPool | None = None
    ) -> None:
        if not clients:
            raise LLMConfigError("FallbackClient needs at least one client", setting="clients")
        self.clients = tuple(clients)
        self._pool = pool

    def __repr__(self) -> str:
        return f"FallbackClient({list(self.clients)!r})"

    async def create(self, request: ModelRequest) -> ModelResponse:
        """Ask the first client that answers.

        Raises:
            ModelError: the last client's error, when every client failed.
        """
        failures: list[ModelError] = []
        for position, client in enumerate(self.clients):
            try:
                return await client.create(request)
            except ModelError as exc:
                failures.append(exc)
                if position + 1 == len(self.clients):
                    for earlier in failures[:-1]:
                        exc.add_note(f"also failed: {type(earlier).__name__}: {earlier}")
                    raise
                log.warning(
                    "model.fallback",
                    failed=repr(client),
                    error=type(exc).__name__,
                    status=exc.status,
                    next=repr(self.clients[position + 1]),
                )
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
        if self._pool is not None:
            await self._pool.aclose()
