"""`FallbackClient` tries each config entry in order; `client_from_llm_config` builds one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from ._cache import DiskCache, ResponseCache
from ._config import LLMConfig
from ._errors import LLMConfigError, ModelError
from ._http import ConnectionPool
from ._openai import OpenAIClient
from ._types import ModelClient, ModelResponse, TokenCallback

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx

    from ._rate_limit import RateLimits
    from ._retry import RetryPolicy

log = structlog.get_logger("moot.agents.model")


class FallbackClient(ModelClient):
    """Asks each client in turn; the next one gets the call when one fails with a `ModelError`.

    The error of the last client is raised, with the earlier failures in its notes. Cancellation
    and programming errors are not failures here and propagate at once.
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

    async def create(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Mapping[str, Any] | type[Any] | None = None,
        stream: bool = False,
        on_token: TokenCallback | None = None,
        stop: str | Sequence[str] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> ModelResponse:
        """Ask the first client that answers.

        Raises:
            ModelError: the last client's error, when every client failed.
        """
        failures: list[ModelError] = []
        for position, client in enumerate(self.clients):
            try:
                return await client.create(
                    messages,
                    tools=tools,
                    tool_choice=tool_choice,
                    response_format=response_format,
                    stream=stream,
                    on_token=on_token,
                    stop=stop,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    timeout=timeout,
                )
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


def client_from_llm_config(
    llm_config: Mapping[str, Any] | LLMConfig,
    *,
    http: httpx.AsyncClient | ConnectionPool | None = None,
    retry: RetryPolicy | None = None,
    rate_limits: RateLimits | None = None,
    cache: ResponseCache | None = None,
) -> ModelClient:
    """A client for AutoGen's `llm_config`: its `config_list` entries, tried in order.

    An integer `cache_seed` turns on a `DiskCache` under `cache_path_root/<seed>` unless `cache`
    is given; without it nothing is cached.

    Raises:
        LLMConfigError: the dict is not a usable llm_config.
    """
    config = LLMConfig.from_autogen(llm_config)
    pool = ConnectionPool() if http is None else None
    if cache is None and config.cache_seed is not None:
        cache = DiskCache(f"{config.cache_path_root}/{config.cache_seed}")
    clients = [
        OpenAIClient(
            entry,
            http=http if http is not None else pool,
            retry=retry,
            rate_limits=rate_limits,
            cache=cache,
            cache_seed=config.cache_seed,
        )
        for entry in config.entries()
    ]
    return FallbackClient(clients, pool=pool)
