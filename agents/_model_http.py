"""One httpx connection pool per event loop, because an `httpx.AsyncClient` is bound to its loop."""

from __future__ import annotations

import anyio.lowlevel
import httpx

DEFAULT_LIMITS = httpx.Limits(
    max_connections=256, max_keepalive_connections=256, keepalive_expiry=30
)


class ConnectionPool:
    """Hands out an `httpx.AsyncClient` for the running event loop, created on first use.

    Sync entry points run each chat in a new loop; a client made in an earlier loop is dropped
    rather than reused there. Call `aclose()` before the loop ends to close its connections.
    """

    def __init__(self, *, limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._loop: object | None = None
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        """The client for the running loop."""
        loop = anyio.lowlevel.current_token().native_token
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(limits=self._limits, timeout=None)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the current loop's connections; the pool makes a new client if used again."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.aclose()
