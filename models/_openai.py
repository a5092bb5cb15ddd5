"""`OpenAIClient`: chat completions over httpx for OpenAI, Azure and OpenAI-compatible servers."""

from __future__ import annotations

import email.utils
import inspect
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import pydantic

from ._cache import ResponseCache, cache_key
from ._errors import (
    AuthenticationError,
    BadRequestError,
    LLMConfigError,
    MalformedResponseError,
    ModelError,
    ModelTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from ._http import ConnectionPool
from ._pricing import price_for
from ._rate_limit import RateLimit, RateLimits, default_rate_limits
from ._retry import RetryPolicy
from ._types import ModelClient, ModelResponse, TokenCallback, ToolCall, Usage
from ._wire import StreamAssembly, WireChunk, WireCompletion, WireUsage

if TYPE_CHECKING:
    from ._config import ModelConfig

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 600.0  # seconds per attempt, as the OpenAI SDK


def _endpoint(config: ModelConfig) -> tuple[str, dict[str, str]]:
    """The chat-completions URL and the auth headers for one config entry."""
    headers = {"content-type": "application/json", **config.default_headers}
    if config.api_type == "azure":
        base = config.base_url or ""
        if "/openai/deployments/" not in base:
            deployment = config.azure_deployment or config.model.replace(".", "")
            base = f"{base}/openai/deployments/{deployment}"
        url = f"{base}/chat/completions?api-version={config.api_version}"
        key = config.api_key or os.environ.get("AZURE_OPENAI_API_KEY")
        if key:
            headers["api-key"] = key
        return url, headers
    base = config.base_url or OPENAI_BASE_URL
    key = config.api_key
    if key is None and config.base_url is None:
        key = os.environ.get("OPENAI_API_KEY")
    if key:
        headers["authorization"] = f"Bearer {key}"
    return f"{base}/chat/completions", headers


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if present."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return float(millis) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(response: httpx.Response) -> tuple[str, str | None]:
    """The provider's error message and code, from OpenAI's `{"error": {...}}` or plain text."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase, None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error), error.get("code") or error.get("type")
    if isinstance(error, str):
        return error, None
    return str(data)[:500], None


async def _deliver(on_token: TokenCallback, text: str) -> None:
    result = on_token(text)
    if inspect.isawaitable(result):
        await result


class OpenAIClient(ModelClient):
    """Chat completions for one config entry, with retries, a shared rate limit and optional cache.

    Pass `http` (an `httpx.AsyncClient` or `ConnectionPool`) to share connections; it is then
    yours to close. Without it the client keeps its own pool and closes it in `aclose()`.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        http: httpx.AsyncClient | ConnectionPool | None = None,
        retry: RetryPolicy | None = None,
        rate_limits: RateLimits | None = None,
        cache: ResponseCache | None = None,
        cache_seed: int | None = None,
    ) -> None:
        self.config = config
        self._url, self._headers = _endpoint(config)
        self._base_url = config.base_url or OPENAI_BASE_URL
        self._owns_pool = http is None
        self._http = ConnectionPool() if http is None else http
        self._retry = retry or RetryPolicy()
        self._limits = rate_limits or default_rate_limits()
        self._limit = (
            RateLimit(
                requests_per_minute=config.requests_per_minute,
                tokens_per_minute=config.tokens_per_minute,
            )
            if config.requests_per_minute or config.tokens_per_minute
            else None
        )
        self._cache = cache
        self._cache_seed = cache_seed
        self._price = config.price or price_for(config.model)

    def __repr__(self) -> str:
        return f"OpenAIClient(model={self.config.model!r}, base_url={self._base_url!r})"

    async def aclose(self) -> None:
        if self._owns_pool and isinstance(self._http, ConnectionPool):
            await self._http.aclose()

    def _client(self) -> httpx.AsyncClient:
        return self._http.get() if isinstance(self._http, ConnectionPool) else self._http

    def _body(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None,
        tool_choice: str | Mapping[str, Any] | None,
        response_format: Mapping[str, Any] | type[Any] | None,
        stream: bool,
        stop: str | Sequence[str] | None,
        temperature: float | None,
        max_tokens: int | None,
    ) -> dict[str, Any]:
        config = self.config
        body: dict[str, Any] = {**config.params, "model": config.model}
        body["messages"] = [dict(message) for message in messages]
        temperature = config.temperature if temperature is None else temperature
        if temperature is not None:
            body["temperature"] = temperature
        max_tokens = config.max_tokens if max_tokens is None else max_tokens
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if stop is not None:
            body["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if tools:
            body["tools"] = [dict(tool) for tool in tools]
        if tool_choice is not None:
            body["tool_choice"] = tool_choice if isinstance(tool_choice, str) else dict(tool_choice)
        if response_format is not None:
            body["response_format"] = _response_format(response_format)
        if stream:
            body["stream"] = True
            if config.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body

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
        """Ask the model for the next assistant message.

        `timeout` is the longest silence (seconds) allowed per attempt: to connect, or between
        bytes of the answer; the retry policy's `deadline` bounds the whole call.

        With `stream=True`, `on_token` receives each content fragment as it arrives.

        Raises:
            AuthenticationError: the provider refused the key (never retried).
            BadRequestError: the provider rejected the request (never retried).
            RateLimitError: still rate limited when the retry policy gave up.
            ModelTimeoutError: an attempt or the policy's overall deadline ran out.
            ProviderUnavailableError: 5xx or no connection, after retries.
            MalformedResponseError: the answer was not chat-completion JSON.
            StreamInterruptedError: the stream broke off after tokens were delivered.
        """
        body = self._body(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            stream=stream,
            stop=stop,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        key = None
        if self._cache is not None:
            # A streamed and a plain call ask the same question: one cache entry serves both.
            keyed = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
            key = cache_key(self._url, keyed, seed=self._cache_seed)
            hit = await self._cache.get(key)
            if hit is not None:
                if on_token is not None and hit.content:
                    await _deliver(on_token, hit.content)
                return hit
        attempt_timeout = timeout or self.config.timeout or DEFAULT_TIMEOUT
        payload = json.dumps(body).encode()
        estimate = self._estimate_tokens(body)

        async def attempt() -> ModelResponse:
            await self._limits.acquire(
                self._base_url, self.config.model, tokens=estimate, limit=self._limit
            )
            if stream:
                response = await self._stream(payload, on_token, attempt_timeout)
            else:
                response = await self._post(payload, attempt_timeout)
            if response.usage.total_tokens:  # a server that reports no usage keeps the estimate
                self._limits.settle(
                    self._base_url,
                    self.config.model,
                    estimated=estimate,
                    actual=response.usage.total_tokens,
                )
            return response

        response = await self._retry.run(attempt, model=self.config.model, base_url=self._base_url)
        if key is not None and self._cache is not None:
            await self._cache.set(key, response)
        return response

    def _estimate_tokens(self, body: Mapping[str, Any]) -> int:
        # About four characters a token; exact counts come back in `usage` and settle the budget.
        chars = sum(len(str(message.get("content") or "")) for message in body["messages"])
        return chars // 4 + int(body.get("max_tokens") or 0)

    def _error(self, kind: type[ModelError], message: str, **extra: Any) -> ModelError:
        return kind(
            f"{message} (model {self.config.model!r} at {self._base_url})",
            model=self.config.model,
            base_url=self._base_url,
            **extra,
        )

    def _status_error(self, response: httpx.Response) -> ModelError:
        status = response.status_code
        text, code = _error_text(response)
        message = f"HTTP {status}: {text}"
        retry_after = _retry_after(response.headers)
        kind: type[ModelError]
        extra: dict[str, Any] = {"status": status, "retry_after": retry_after}
        if status in (401, 403):
            kind = AuthenticationError
        elif status == 429:
            kind = RateLimitError
            if code == "insufficient_quota":
                extra["retryable"] = False
        elif status == 408:
            kind = ModelTimeoutError
        elif status == 409 or status >= 500:
            kind = ProviderUnavailableError
        else:
            kind = BadRequestError
        return self._error(kind, message, **extra)

    def _response(
        self,
        *,
        content: str | None,
        tool_calls: tuple[ToolCall, ...],
        finish_reason: str | None,
        model: str,
        usage: WireUsage | None,
    ) -> ModelResponse:
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        total = (usage.total_tokens if usage else None) or prompt + completion
        return ModelResponse(
            content=content,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            model=model or self.config.model,
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total),
            cost=self._price.cost(prompt, completion) if self._price else 0.0,
        )

    async def _post(self, payload: bytes, limit: float) -> ModelResponse:
        try:
            response = await self._client().post(
                self._url, content=payload, headers=self._headers, timeout=httpx.Timeout(limit)
            )
        except httpx.TimeoutException as exc:
            raise self._error(ModelTimeoutError, f"no answer within {limit} s") from exc
        except httpx.TransportError as exc:
            raise self._error(
                ProviderUnavailableError, f"cannot reach the server: {exc!r}"
            ) from exc
        if response.status_code >= 400:
            raise self._status_error(response)
        return self._parse(response)

    def _parse(self, response: httpx.Response) -> ModelResponse:
        try:
            wire = WireCompletion.model_validate_json(response.content)
        except pydantic.ValidationError as exc:
            raise self._error(
                MalformedResponseError,
                f"not a chat completion: {response.text[:200]!r}",
                status=response.status_code,
            ) from exc
        choice = wire.choices[0]
        calls = tuple(
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
            for call in choice.message.tool_calls or ()
        )
        return self._response(
            content=choice.message.content,
            tool_calls=calls,
            finish_reason=choice.finish_reason,
            model=wire.model,
            usage=wire.usage,
        )

    async def _stream(
        self, payload: bytes, on_token: TokenCallback | None, limit: float
    ) -> ModelResponse:
        assembly = StreamAssembly()
        delivered = False
        done = False
        status = None
        try:
            async with self._client().stream(
                "POST",
                self._url,
                content=payload,
                headers=self._headers,
                timeout=httpx.Timeout(limit),
            ) as response:
                status = response.status_code
                if status >= 400:
                    await response.aread()
                    raise self._status_error(response)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # The server ignored `stream`: take the whole answer and hand it over at once.
                    await response.aread()
                    whole = self._parse(response)
                    if whole.content and on_token is not None:
                        await _deliver(on_token, whole.content)
                    return whole
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = WireChunk.model_validate_json(data)
                    except pydantic.ValidationError as exc:
                        raise self._error(
                            MalformedResponseError,
                            f"not a chat-completion chunk: {data[:200]!r}",
                            status=status,
                        ) from exc
                    text = assembly.add(chunk)
                    if text and on_token is not None:
                        delivered = True
                        await _deliver(on_token, text)
        except httpx.TimeoutException as exc:
            raise self._error(
                ModelTimeoutError,
                f"no data for {limit} s",
                status=status,
                retryable=not delivered,
            ) from exc
        except httpx.TransportError as exc:
            if status is None:
                raise self._error(
                    ProviderUnavailableError, f"cannot reach the server: {exc!r}"
                ) from exc
            raise self._error(
                StreamInterruptedError,
                f"the stream broke off: {exc!r}",
                status=status,
                retryable=not delivered,
            ) from exc
        if not done and assembly.finish_reason is None:
            raise self._error(
                StreamInterruptedError,
                "the stream ended before [DONE]",
                status=status,
                retryable=not delivered,
            )
        return self._response(
            content=assembly.content,
            tool_calls=assembly.tool_calls(),
            finish_reason=assembly.finish_reason,
            model=assembly.model,
            usage=assembly.usage,
        )


def _response_format(value: Mapping[str, Any] | type[Any]) -> dict[str, Any]:
    """Pass a dict through; turn a pydantic model class into a `json_schema` response format."""
    if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
        return {
            "type": "json_schema",
            "json_schema": {"name": value.__name__, "schema": value.model_json_schema()},
        }
    if isinstance(value, Mapping):
        return dict(value)
    raise LLMConfigError(
        f"response_format must be a mapping or a pydantic model class, not {value!r}",
        setting="response_format",
    )
