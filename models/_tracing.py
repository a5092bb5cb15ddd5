"""The `chat {model}` span of one config entry's call: retries and rate-limit waits inside it
become its events (moot.observability); nothing happens unless an SDK is configured."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import httpx

from moot import observability
from moot.observability import semconv

from ._types import ClientWrapper

if TYPE_CHECKING:
    from ._types import ModelClient, ModelRequest, ModelResponse


class TracingClient(ClientWrapper):
    """Wraps one entry's `RetryingClient`, so one span covers every attempt of one call."""

    def __init__(
        self, inner: ModelClient, *, model: str, base_url: str, provider: str = "openai"
    ) -> None:
        super().__init__(inner)
        self.model = model
        self.base_url = base_url
        self.provider = provider

    async def create(self, request: ModelRequest) -> ModelResponse:
        if not observability.SWITCH.active:  # the default: one flag, then straight through
            return await self.inner.create(request)
        host, port = _host_port(self.base_url)
        with observability.model_call(
            self.model,
            provider=self.provider,
            server=host,
            port=port,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
        ) as span:
            span.content(semconv.GEN_AI_INPUT_MESSAGES, request.messages)
            response = await self.inner.create(request)
            span.response(
                model=response.model,
                input_tokens=response.usage.prompt_tokens,
                output_tokens=response.usage.completion_tokens,
                finish_reason=response.finish_reason,
                cost=response.cost,
                cached=response.cached,
            )
            span.content(semconv.GEN_AI_OUTPUT_MESSAGES, [response.to_message()])
            return response


def trace_cache_hit(response: ModelResponse, *, model: str | None, provider: str | None) -> None:
    """The `chat {model}` span of an answer from the cache (`moot.model.cached`): every model
    answer an agent gets is a span, a hit too. Call it only when the switch is on."""
    with observability.cached_model_call(
        model or response.model or "unknown", provider=provider
    ) as span:
        span.response(
            model=response.model,
            input_tokens=response.usage.prompt_tokens,
            output_tokens=response.usage.completion_tokens,
            finish_reason=response.finish_reason,
            cost=response.cost,
            cached=True,
        )


def provider_name(api_type: str | None) -> str:
    """The provider as the GenAI conventions name it (`gen_ai.system` / `gen_ai.provider.name`)."""
    return {"anthropic": "anthropic", "gemini": "gcp.gemini"}.get(str(api_type), "openai")


@functools.lru_cache(maxsize=64)
def _host_port(base_url: str) -> tuple[str, int | None]:
    """The server's host and port, for the span (parsed once per base URL)."""
    url = httpx.URL(base_url)
    return url.host, url.port
