"""Where the model client's layers are put together, in one visible order.

For an `llm_config` the stack is, outermost first:

    CachingClient                       a hit costs no rate budget, no retry, no fallback
    └── FallbackClient                  config entries in order; the next one gets a failed call
        └── TracingClient               per entry: one `chat {model}` span (moot.observability)
            └── RetryingClient          per entry: backoff, Retry-After, the call's overall deadline
                └── RateLimitedClient   per attempt: a retry waits for budget like a first try
                    └── OpenAIClient    one HTTP attempt, byte caps, typed errors
                        (AnthropicClient, GeminiClient by `api_type`)

Why this order: the cache answers before anything is spent; retries happen inside one entry, so
a provider that is merely slow is retried before the next provider is tried; the rate limiter
sits under the retry so every attempt, not only the first, is counted against the budget.
Observers (the demo's console, the bench's timers) are `ClientWrapper`s added on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._anthropic import AnthropicClient, anthropic_endpoint
from ._cache import CachingClient, DiskCache, ResponseCache
from ._config import LLMConfig, ModelConfig
from ._fallback import FallbackClient
from ._gemini import GeminiClient, gemini_endpoint
from ._http import ConnectionPool
from ._openai import OPENAI_BASE_URL, OpenAIClient
from ._rate_limit import RateLimit, RateLimitedClient, RateLimits, default_rate_limits
from ._retry import RetryingClient, RetryPolicy
from ._tracing import TracingClient, provider_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from ._types import ModelClient

_NOT_IN_CACHE_SCOPE = {
    "api_key",
    "default_headers",
    "price",
    "tags",
    "timeout",
    "max_response_bytes",
    "requests_per_minute",
    "tokens_per_minute",
    "stream_usage",
}


def client_from_config(
    config: ModelConfig,
    *,
    http: httpx.AsyncClient | ConnectionPool | None = None,
    retry: RetryPolicy | None = None,
    rate_limits: RateLimits | None = None,
) -> ModelClient:
    """One config entry's stack: `TracingClient(RetryingClient(RateLimitedClient(OpenAIClient)))`,
    with an `AnthropicClient` at the bottom for an `api_type="anthropic"` entry.

    `rate_limits` defaults to the process-wide limiter, so every client of one provider and
    model shares its budget.
    """
    http_client: OpenAIClient
    if config.api_type == "gemini":
        base_url = gemini_endpoint(config)[0]
        http_client = GeminiClient(config, http=http)
    elif config.api_type == "anthropic":
        base_url = anthropic_endpoint(config)[0]
        http_client = AnthropicClient(config, http=http)
    else:
        base_url = config.base_url or OPENAI_BASE_URL
        http_client = OpenAIClient(config, http=http)
    limit = None
    if config.requests_per_minute or config.tokens_per_minute:
        limit = RateLimit(
            requests_per_minute=config.requests_per_minute,
            tokens_per_minute=config.tokens_per_minute,
        )
    limited = RateLimitedClient(
        http_client,
        rate_limits or default_rate_limits(),
        base_url=base_url,
        model=config.model,
        limit=limit,
        default_max_tokens=config.max_tokens,
    )
    retrying = RetryingClient(
        limited, retry, timeout=config.timeout, model=config.model, base_url=base_url
    )
    provider = provider_name(config.api_type)
    return TracingClient(retrying, model=config.model, base_url=base_url, provider=provider)


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
    is given; without either nothing is cached. The layers are drawn in this module's docstring.

    Raises:
        LLMConfigError: the dict is not a usable llm_config.
    """
    config = LLMConfig.from_autogen(llm_config)
    pool = ConnectionPool() if http is None else None
    entries = config.entries()
    client: ModelClient = FallbackClient(
        [
            client_from_config(
                entry,
                http=http if http is not None else pool,
                retry=retry,
                rate_limits=rate_limits,
            )
            for entry in entries
        ],
        pool=pool,
    )
    if cache is None and config.cache_seed is not None:
        cache = DiskCache(f"{config.cache_path_root}/{config.cache_seed}")
    if cache is not None:
        scope = [entry.model_dump(mode="json", exclude=_NOT_IN_CACHE_SCOPE) for entry in entries]
        client = CachingClient(
            client,
            cache,
            scope=scope,
            seed=config.cache_seed,
            traced_as=(entries[0].model, provider_name(entries[0].api_type)),
        )
    return client
