"""Connection pools per event loop, because an `httpx.AsyncClient` is bound to its loop.

A pool spreads requests over a few `httpx.AsyncClient`s ("shards"): one httpx pool serving a
hundred concurrent requests spends most of its time in its own bookkeeping, several small ones
do not (measured in `benchmarks/bench_model_client.py`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import anyio.lowlevel
import httpx

from ._errors import LLMConfigError

if TYPE_CHECKING:
    import ssl

DEFAULT_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=30)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~20 ms; one context serves every client in the process.
    return httpx.create_ssl_context()


class ConnectionPool:
    """Hands out an `httpx.AsyncClient` for the running event loop, created on first use.

    Sync entry points run each chat in a new loop; clients made in an earlier loop are dropped
    rather than reused there. Call `aclose()` before the loop ends to close their connections.
    `limits` apply to each of the `shards` clients.
    """

    def __init__(self, *, shards: int = 8, limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        if shards < 1:
            raise LLMConfigError("a ConnectionPool needs at least one shard", setting="shards")
        self._shards = shards
        self._limits = limits
        self._loop: object | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._turn = 0

    def get(self) -> httpx.AsyncClient:
        """A client for the running loop (the shards take turns)."""
        loop = anyio.lowlevel.current_token().native_token
        if self._loop is not loop or not self._clients:
            self._clients = [
                httpx.AsyncClient(limits=self._limits, timeout=None, verify=_ssl_context())
                for _ in range(self._shards)
            ]
            self._loop = loop
        self._turn = (self._turn + 1) % self._shards
        return self._clients[self._turn]

    async def aclose(self) -> None:
        """Close the current loop's connections; the pool makes new clients if used again."""
        clients, self._clients, self._loop = self._clients, [], None
        for client in clients:
            await client.aclose()
