"""`OpenAIClient`: chat completions over httpx for OpenAI, Azure and OpenAI-compatible servers."""

from __future__ import annotations

import abc
import codecs
import email.utils
import inspect
import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx
import pydantic

from ._config import DEFAULT_MAX_RESPONSE_BYTES
from ._errors import (
    InvalidJSONError,
    LLMConfigError,
    MalformedResponseError,
    ModelError,
    ModelTimeoutError,
    ProviderUnavailableError,
    ResponseTooLargeError,
    StreamInterruptedError,
    error_for_status,
)
from ._http import ConnectionPool
from ._json import loads_bounded
from ._pricing import price_for
from ._types import ModelClient, ModelRequest, ModelResponse, TokenCallback, ToolCall, Usage
from ._wire import StreamAssembly, WireChunk, WireCompletion, WireUsage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._config import ModelConfig

OPENAI_BASE_URL = "https://api.openai.com/v1"
_Wire = TypeVar("_Wire", bound=pydantic.BaseModel)
DEFAULT_TIMEOUT = 600.0  # seconds of silence per attempt when no deadline is set, as the OpenAI SDK


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


def _error_text(response: httpx.Response, content: bytes) -> tuple[str, str | None]:
    """The provider's error message and code, from OpenAI's `{"error": {...}}` or plain text."""
    try:
        data = loads_bounded(content)
    except InvalidJSONError:
        text = content[:500].decode("utf-8", "replace")
        return text or response.reason_phrase, None
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
    """One config entry over HTTP: one attempt per call, no retry, no rate limit, no cache.

    Those are wrappers composed around it (see `client_from_config`). Pass `http` (an
    `httpx.AsyncClient` or `ConnectionPool`) to share connections; it is then yours to close.
    Without it the client keeps its own pool and closes it in `aclose()`. An answer, whole or
    streamed, larger than `config.max_response_bytes` is refused.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        http: httpx.AsyncClient | ConnectionPool | None = None,
    ) -> None:
        self.config = config
        self._url, self._headers = _endpoint(config)
        self._base_url = config.base_url or OPENAI_BASE_URL
        self._owns_pool = http is None
        self._http = ConnectionPool() if http is None else http
        self._price = config.price or price_for(config.model)
        self._max_bytes = config.max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES

    def __repr__(self) -> str:
        return f"OpenAIClient(model={self.config.model!r}, base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        """The base URL requests go to (OpenAI's when the config names none)."""
        return self._base_url

    async def aclose(self) -> None:
        if self._owns_pool and isinstance(self._http, ConnectionPool):
            await self._http.aclose()

    def _client(self) -> httpx.AsyncClient:
        return self._http.get() if isinstance(self._http, ConnectionPool) else self._http

    def body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body this client sends for `request`, with the config's defaults filled in."""
        config = self.config
        body: dict[str, Any] = {**config.params, "model": config.model}
        body["messages"] = [dict(message) for message in request.messages]
        temperature = config.temperature if request.temperature is None else request.temperature
        if temperature is not None:
            body["temperature"] = temperature
        max_tokens = config.max_tokens if request.max_tokens is None else request.max_tokens
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        stop = request.stop
        if stop is not None:
            body["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if request.tools:
            body["tools"] = [dict(tool) for tool in request.tools]
        tool_choice = request.tool_choice
        if tool_choice is not None:
            body["tool_choice"] = tool_choice if isinstance(tool_choice, str) else dict(tool_choice)
        if request.response_format is not None:
            body["response_format"] = _response_format(request.response_format)
        if request.stream:
            body["stream"] = True
            if config.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    async def create(self, request: ModelRequest) -> ModelResponse:
        """Ask the model for the next assistant message, in one HTTP attempt.

        `request.timeout` (else the config's `timeout`) is the deadline of the whole attempt,
        however slowly the bytes drip; without one, 600 s of silence ends it.

        Raises:
            AuthenticationError: the provider refused the key.
            BadRequestError: the provider rejected the request.
            RateLimitError: HTTP 429, with the provider's `retry_after`.
            ModelTimeoutError: the deadline passed, or the server fell silent.
            ProviderUnavailableError: 5xx or no connection.
            MalformedResponseError: the answer was not chat-completion JSON.
            ResponseTooLargeError: the answer passed `max_response_bytes`.
            StreamInterruptedError: the stream broke off or sent an error event.
        """
        body = self.body(request)
        deadline = request.timeout or self.config.timeout
        if deadline is None:
            return await self._attempt(request, body, DEFAULT_TIMEOUT)
        try:
            with anyio.fail_after(deadline):
                return await self._attempt(request, body, deadline)
        except TimeoutError as exc:
            if isinstance(exc, ModelError):
                raise
            raise self._error(
                ModelTimeoutError, f"no complete answer within the {deadline} s deadline"
            ) from exc

    async def _attempt(
        self, request: ModelRequest, body: dict[str, Any], limit: float
    ) -> ModelResponse:
        """One HTTP exchange for `body`, streamed or whole, within `limit` seconds of silence."""
        payload = json.dumps(body).encode()
        if request.stream:
            return await self._stream(payload, request.on_token, limit)
        return await self._post(payload, limit)

    def _error(self, kind: type[ModelError], message: str, **extra: Any) -> ModelError:
        return kind(
            f"{message} (model {self.config.model!r} at {self._base_url})",
            model=self.config.model,
            base_url=self._base_url,
            **extra,
        )

    def _stream_failure(
        self, exc: httpx.TransportError, limit: float, status: int | None, delivered: bool
    ) -> ModelError:
        """A streamed call's httpx failure, ours: silence past `limit` is a timeout, no
        connection an unavailable provider, a cut a broken stream; once a token has reached the
        caller it is not retryable (the caller would see the text twice)."""
        if isinstance(exc, httpx.TimeoutException):
            return self._error(
                ModelTimeoutError, f"no data for {limit} s", status=status, retryable=not delivered
            )
        if status is None:
            return self._error(ProviderUnavailableError, f"cannot reach the server: {exc!r}")
        return self._error(
            StreamInterruptedError,
            f"the stream broke off: {exc!r}",
            status=status,
            retryable=not delivered,
        )

    def _status_error(self, response: httpx.Response, content: bytes) -> ModelError:
        text, code = _error_text(response, content)
        where = f"model {self.config.model!r} at {self._base_url}"
        return error_for_status(
            response.status_code,
            f"HTTP {response.status_code}: {text} ({where})",
            code=code,
            retry_after=_retry_after(response.headers),
            model=self.config.model,
            base_url=self._base_url,
        )

    def _too_large(self, what: str, status: int | None) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"{what} passed the {self._max_bytes} byte cap (max_response_bytes;"
            f" model {self.config.model!r} at {self._base_url})",
            limit=self._max_bytes,
            model=self.config.model,
            base_url=self._base_url,
            status=status,
        )

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
        http = self._client()
        request = http.build_request(
            "POST", self._url, content=payload, headers=self._headers, timeout=httpx.Timeout(limit)
        )
        try:
            response = await http.send(request, stream=True)
            try:
                content = await self._read_capped(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise self._error(ModelTimeoutError, f"no answer within {limit} s") from exc
        except httpx.TransportError as exc:
            raise self._error(
                ProviderUnavailableError, f"cannot reach the server: {exc!r}"
            ) from exc
        if response.status_code >= 400:
            raise self._status_error(response, content)
        return self._parse(response, content)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """The body, refused past the byte cap (read whole when its length is declared)."""
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self._max_bytes:
                raise self._too_large("the answer", response.status_code)
            return await response.aread()
        parts: list[bytes] = []
        received = 0
        async for part in response.aiter_bytes():
            received += len(part)
            if received > self._max_bytes:
                raise self._too_large("the answer", response.status_code)
            parts.append(part)
        return b"".join(parts)

    def _decode(
        self, wire: type[_Wire], data: str | bytes, *, status: int | None, what: str
    ) -> _Wire:
        """`data` read as `wire`, or a `MalformedResponseError` saying it is not `what`."""
        try:
            return wire.model_validate_json(data)
        except pydantic.ValidationError as exc:
            raise self._error(
                MalformedResponseError, f"not {what}: {data[:200]!r}", status=status
            ) from exc

    def _parse(self, response: httpx.Response, content: bytes) -> ModelResponse:
        wire = self._decode(
            WireCompletion, content, status=response.status_code, what="a chat completion"
        )
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

    def _stream_error(self, error: Any, status: int | None, delivered: bool) -> ModelError:
        """The typed error for an error event inside a 200 stream (vLLM sends one, then [DONE])."""
        detail = error if isinstance(error, dict) else {"message": error}
        message = f"the stream sent an error: {str(detail.get('message') or detail)[:500]}"
        code = detail.get("code")
        kind = detail.get("status") or code
        if isinstance(kind, str) and kind.isdigit():
            kind = int(kind)
        if isinstance(kind, int) and 400 <= kind < 600:
            found = error_for_status(
                kind,
                f"{message} (model {self.config.model!r} at {self._base_url})",
                code=code if isinstance(code, str) else None,
                model=self.config.model,
                base_url=self._base_url,
            )
            found.retryable = found.retryable and not delivered
            return found
        return self._error(StreamInterruptedError, message, status=status, retryable=not delivered)

    def _stream_url(self) -> str:
        """Where a streamed call goes (the same URL as a whole one, for chat completions)."""
        return self._url

    def _events(self) -> StreamEvents:
        """A fresh handler of this provider's stream grammar, for one streamed call."""
        return _ChatEvents(self)

    async def _stream(
        self, payload: bytes, on_token: TokenCallback | None, limit: float
    ) -> ModelResponse:
        """The one stream loop of every HTTP client: status check, the whole-answer fallback
        when the server ignored `stream`, capped SSE lines handed to the provider's `events`,
        and httpx failures mapped; `events` folds the data lines and builds the answer."""
        events = self._events()
        delivered = False
        status = None
        try:
            async with self._client().stream(
                "POST",
                self._stream_url(),
                content=payload,
                headers=self._headers,
                timeout=httpx.Timeout(limit),
            ) as response:
                status = response.status_code
                if status >= 400:
                    raise self._status_error(response, await self._read_capped(response))
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # The server ignored `stream`: take the whole answer and hand it over at once.
                    whole = self._parse(response, await self._read_capped(response))
                    if whole.content and on_token is not None:
                        await _deliver(on_token, whole.content)
                    return whole
                event = ""
                async for line in _capped_lines(response, self._max_bytes):
                    if line is None:
                        raise self._too_large("the stream", status)
                    if line.startswith("event:"):
                        event = line[6:].strip()
                        continue
                    if not line.startswith("data:"):
                        if not line:
                            event = ""
                        continue
                    text = events.take(event, line[5:].strip(), status=status, delivered=delivered)
                    if text and on_token is not None:
                        delivered = True
                        await _deliver(on_token, text)
                    if events.done:
                        break
        except httpx.TransportError as exc:
            raise self._stream_failure(exc, limit, status, delivered) from exc
        return events.finish(status=status, delivered=delivered)


class StreamEvents(abc.ABC):
    """One streamed answer in one provider's grammar: it folds the stream's data lines, says
    when the answer is complete (`done`) and builds the `ModelResponse` at the end.

    `OpenAIClient._stream` owns the loop; each client only says what its events mean.
    """

    done: bool = False  # the provider's end marker arrived: the loop stops reading

    @abc.abstractmethod
    def take(self, event: str, data: str, *, status: int | None, delivered: bool) -> str | None:
        """Fold one `data:` line (after its `event:` name, if any); return text for the caller.

        Raises:
            ModelError: the line is malformed or an error event (not retryable once delivered).
        """

    @abc.abstractmethod
    def finish(self, *, status: int | None, delivered: bool) -> ModelResponse:
        """The answer, once the stream ended.

        Raises:
            StreamInterruptedError: the stream ended before the provider's end marker.
        """


class _ChatEvents(StreamEvents):
    """Chat-completion chunks up to `[DONE]`; an `error` event or chunk is a typed error."""

    def __init__(self, client: OpenAIClient) -> None:
        self.client = client
        self.assembly = StreamAssembly()

    def take(self, event: str, data: str, *, status: int | None, delivered: bool) -> str | None:
        client = self.client
        if data == "[DONE]":
            self.done = True
            return None
        try:
            chunk = WireChunk.model_validate_json(data)
        except pydantic.ValidationError as exc:
            if event == "error":
                raise client._stream_error(data, status, delivered) from exc
            raise client._error(
                MalformedResponseError,
                f"not a chat-completion chunk: {data[:200]!r}",
                status=status,
            ) from exc
        if chunk.error is not None or event == "error":
            raise client._stream_error(chunk.error or data, status, delivered)
        return self.assembly.add(chunk)

    def finish(self, *, status: int | None, delivered: bool) -> ModelResponse:
        assembly = self.assembly
        if not self.done and assembly.finish_reason is None:
            raise self.client._error(
                StreamInterruptedError,
                "the stream ended before [DONE]",
                status=status,
                retryable=not delivered,
            )
        return self.client._response(
            content=assembly.content,
            tool_calls=assembly.tool_calls(),
            finish_reason=assembly.finish_reason,
            model=assembly.model,
            usage=assembly.usage,
        )


async def _capped_lines(response: httpx.Response, cap: int) -> AsyncIterator[str | None]:
    """The stream's lines; None once more than `cap` bytes arrived (a line never grows past it)."""
    received = 0
    partial: list[str] = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for raw in response.aiter_bytes():
        received += len(raw)
        if received > cap:
            yield None
            return
        text = decoder.decode(raw)
        if "\n" not in text:
            partial.append(text)
            continue
        partial.append(text)
        *lines, rest = "".join(partial).split("\n")
        partial = [rest] if rest else []
        for line in lines:
            yield line.rstrip("\r")
    if partial:
        yield "".join(partial).rstrip("\r")


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
