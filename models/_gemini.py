"""`GeminiClient`: Gemini's `generateContent` / `streamGenerateContent` over httpx, behind the seam.

OpenAI-shaped messages become `contents` (roles `user` and `model`, `functionCall` and
`functionResponse` parts), the system prompt `systemInstruction`; streaming reads SSE
(`alt=sse`), each event a partial `GenerateContentResponse`.

Explicit context caching: once the stable part of a request (system prompt, tools, and every
turn but the last) is long enough, the client stores it as a `cachedContents` resource and later
calls name it (`cachedContent`) and send only the turns after it, so a growing group chat is
billed mostly as cache reads. Thought parts (thinking) ride along in `thinking_blocks`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pydantic
import structlog

from ._errors import (
    InvalidJSONError,
    LLMConfigError,
    MalformedResponseError,
    ModelError,
    StreamInterruptedError,
)
from ._json import loads_bounded
from ._openai import OpenAIClient, StreamEvents
from ._types import ModelRequest, ModelResponse, ToolCall, Usage

if TYPE_CHECKING:
    from ._config import ModelConfig
    from ._http import ConnectionPool

log = structlog.get_logger("moot.models.gemini")

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}
_STATIC = ("systemInstruction", "tools", "toolConfig")  # a cache holds these; a call then can't
CACHE_MIN_TOKENS = 1024  # the API's smallest cache on its Flash models (Pro: 4096)
CACHE_TTL = 300.0  # seconds a cache lives; the API bills storage per token-hour
CACHE_MARGIN = 30.0  # seconds before its expiry when a cache is no longer named
CACHE_GROWTH = 0.5  # a new, longer cache once the uncached turns reach half the cached ones


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextCaching:
    """When `GeminiClient` makes `cachedContents`: `min_tokens` (estimated as characters / 4) and
    their `ttl` in seconds. Set per config entry: `"context_cache": {"min_tokens": 2048}`, or
    `"context_cache": False` to turn it off."""

    min_tokens: int = CACHE_MIN_TOKENS
    ttl: float = CACHE_TTL

    @classmethod
    def from_setting(cls, value: Any) -> ContextCaching | None:
        """Raises: LLMConfigError: not a bool or a mapping of those two positive numbers."""
        if value is True:
            return cls()
        if value is False or value is None:
            return None
        if not isinstance(value, Mapping) or set(value) - {"min_tokens", "ttl"}:
            raise LLMConfigError(
                "context_cache must be True, False or {'min_tokens': N, 'ttl': SECONDS};"
                f" got {value!r}",
                setting="context_cache",
            )
        min_tokens = value.get("min_tokens", CACHE_MIN_TOKENS)
        ttl = value.get("ttl", CACHE_TTL)
        if not isinstance(min_tokens, int) or isinstance(min_tokens, bool) or min_tokens < 0:
            raise LLMConfigError(
                f"context_cache min_tokens must be an integer >= 0, got {min_tokens!r}",
                setting="context_cache",
            )
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl <= CACHE_MARGIN:
            raise LLMConfigError(
                f"context_cache ttl must be more than {CACHE_MARGIN:g} seconds, got {ttl!r}",
                setting="context_cache",
            )
        return cls(min_tokens=min_tokens, ttl=float(ttl))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Cache:
    """One `cachedContents` resource this client made: the first `count` contents of a prefix."""

    name: str
    count: int
    digest: str  # of those contents
    estimate: int  # estimated tokens of what it holds (static part and contents)
    tokens: int  # the API's count, billed once as cache writes
    expires: float  # time.monotonic()


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _estimate(value: Any) -> int:
    """Tokens, roughly: a quarter of the JSON's characters."""
    return len(json.dumps(value)) // 4


def gemini_endpoint(config: ModelConfig) -> tuple[str, str, dict[str, str]]:
    """The base URL, the model's URL prefix (`.../models/NAME`) and the headers for one entry."""
    base = config.base_url or GEMINI_BASE_URL
    root = base if base.rstrip("/").endswith(("/v1beta", "/v1")) else f"{base}/v1beta"
    headers = {"content-type": "application/json", **config.default_headers}
    key = config.api_key
    if key is None and config.base_url is None:
        key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if key:
        headers["x-goog-api-key"] = key
    return base, f"{root}/models/{config.model}", headers


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))


def convert_contents(messages: Any) -> tuple[str, list[dict[str, Any]]]:
    """OpenAI-shaped messages as Gemini's `(system text, contents)`; one role per turn, merged."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for functionResponse parts
    for message in messages:
        role = message.get("role", "user")
        if role in ("system", "developer") and not contents:
            system.append(_text(message.get("content")))
            continue
        parts: list[dict[str, Any]] = []
        if role == "assistant":
            wire_role = "model"
            # Gemini's thought parts and signatures (Anthropic's blocks have a "type": not ours)
            kept = [b for b in message.get("thinking_blocks") or () if "type" not in b]
            parts.extend(dict(b) for b in kept if b.get("thought"))
            if _text(message.get("content")):
                parts.append({"text": _text(message.get("content"))})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                names[str(call.get("id", ""))] = str(function.get("name", ""))
                try:
                    args = loads_bounded(function.get("arguments") or "{}")
                except InvalidJSONError:
                    args = {"_raw_arguments": function.get("arguments")}
                parts.append({"functionCall": {"name": function.get("name", ""), "args": args}})
            _sign(parts, [b for b in kept if not b.get("thought") and "thoughtSignature" in b])
        elif role in ("tool", "function"):
            wire_role = "user"
            name = message.get("name") or names.get(str(message.get("tool_call_id", "")), "")
            output = {"output": _text(message.get("content"))}
            parts.append({"functionResponse": {"name": name, "response": output}})
        else:
            wire_role = "user"
            if _text(message.get("content")):
                parts.append({"text": _text(message.get("content"))})
        if not parts:
            continue
        if contents and contents[-1]["role"] == wire_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": wire_role, "parts": parts})
    return "\n\n".join(text for text in system if text), contents


def _sign(parts: list[dict[str, Any]], signatures: list[Mapping[str, Any]]) -> None:
    """Put each `thoughtSignature` back on the part it came with: a function call by name, else
    the answer's text part, as the API wants them during a tool-use exchange."""
    for carrier in signatures:
        on = str(carrier.get("on", "text"))
        for part in parts:
            if "thoughtSignature" in part or part.get("thought"):
                continue
            call = part.get("functionCall")
            if (on == "text" and "text" in part) or (
                call is not None and on == f"functionCall:{call.get('name', '')}"
            ):
                part["thoughtSignature"] = carrier["thoughtSignature"]
                break


class _Candidate(pydantic.BaseModel):
    content: dict[str, Any] = pydantic.Field(default_factory=dict)
    finishReason: str | None = None


class _Answer(pydantic.BaseModel):
    candidates: list[_Candidate] = pydantic.Field(default_factory=list)
    usageMetadata: dict[str, Any] = pydantic.Field(default_factory=dict)
    modelVersion: str = ""


class GeminiClient(OpenAIClient):
    """One Gemini config entry (`api_type="gemini"`): one `generateContent` attempt per call.

    It shares the OpenAI client's transport (byte caps, deadline, typed errors) and sits under
    the same wrappers. `usageMetadata.cachedContentTokenCount` is reported as cache reads.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        http: httpx.AsyncClient | ConnectionPool | None = None,
    ) -> None:
        super().__init__(config, http=http)
        self._base_url, self._model_url, self._headers = gemini_endpoint(config)
        self._url = f"{self._model_url}:generateContent"
        self._caches_url = self._model_url.rsplit("/models/", 1)[0] + "/cachedContents"
        self.caching = ContextCaching.from_setting(config.params.get("context_cache", True))
        self._caches: dict[str, list[_Cache]] = {}  # static part's digest -> live caches
        self._refused: dict[str, int] = {}  # static part's digest -> contents a create failed at
        self._planning = anyio.Lock()  # concurrent chats on this client make one cache, not many

    def __repr__(self) -> str:
        return f"GeminiClient(model={self.config.model!r}, base_url={self._base_url!r})"

    def body(self, request: ModelRequest) -> dict[str, Any]:
        """The `generateContent` body for `request`, with the config's defaults filled in."""
        config = self.config
        system, contents = convert_contents(request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        generation: dict[str, Any] = dict(config.params.get("generationConfig") or {})
        temperature = config.temperature if request.temperature is None else request.temperature
        if temperature is not None:
            generation["temperature"] = temperature
        max_tokens = config.max_tokens if request.max_tokens is None else request.max_tokens
        if max_tokens is not None:
            generation["maxOutputTokens"] = max_tokens
        if request.stop is not None:
            stop = request.stop
            generation["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        if request.response_format is not None:
            generation["responseMimeType"] = "application/json"
        if generation:
            body["generationConfig"] = generation
        if request.tools:
            declarations = []
            for tool in request.tools:
                function = tool.get("function", tool)
                declaration = {"name": function["name"]}
                if function.get("description"):
                    declaration["description"] = function["description"]
                if function.get("parameters"):
                    declaration["parameters"] = function["parameters"]
                declarations.append(declaration)
            body["tools"] = [{"functionDeclarations": declarations}]
            mode = _tool_mode(request.tool_choice)
            if mode is not None:
                body["toolConfig"] = {"functionCallingConfig": mode}
        for key, value in config.params.items():
            if key != "context_cache":
                body.setdefault(key, value)
        return body

    async def _attempt(
        self, request: ModelRequest, body: dict[str, Any], limit: float
    ) -> ModelResponse:
        """The call, naming a cache of its stable prefix when there is (or now is) one; a cache
        the API no longer knows is forgotten and the call is made again without it."""
        caching = self.caching
        if caching is None:
            return await super()._attempt(request, body, limit)
        async with self._planning:
            cached, made = await self._cached_body(body, limit, caching)
        if cached is body:
            return await super()._attempt(request, body, limit)
        try:
            response = await super()._attempt(request, cached, limit)
        except ModelError as exc:
            if exc.status not in (400, 403, 404):
                raise
            self._forget(str(cached["cachedContent"]))
            log.info("gemini.cache_refused", cache=cached["cachedContent"], status=exc.status)
            return await super()._attempt(request, body, limit)
        if not made:
            return response
        # the new cache's tokens were billed when it was made: count them with this call
        usage = response.usage
        usage = dataclasses.replace(
            usage,
            prompt_tokens=usage.prompt_tokens + made,
            total_tokens=usage.total_tokens + made,
            cache_write_tokens=usage.cache_write_tokens + made,
        )
        price = self._price
        cost = (
            price.cost(
                usage.prompt_tokens,
                usage.completion_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )
            if price
            else 0.0
        )
        return dataclasses.replace(response, usage=usage, cost=cost)

    async def _cached_body(
        self, body: dict[str, Any], limit: float, caching: ContextCaching
    ) -> tuple[dict[str, Any], int]:
        """`body` naming the longest live cache of its prefix (made now when the uncached
        prefix has grown enough), and the tokens of a cache made now (0 if none)."""
        static = {key: body[key] for key in _STATIC if key in body}
        contents: list[dict[str, Any]] = body["contents"]
        key = _digest([self.config.model, static])
        now = time.monotonic()
        live = [c for c in self._caches.get(key, ()) if c.expires - CACHE_MARGIN > now]
        self._caches[key] = live
        best: _Cache | None = None
        for cache in live:
            if cache.count < len(contents) and (best is None or cache.count > best.count):
                if cache.digest == _digest(contents[: cache.count]):
                    best = cache
        made = 0
        count = len(contents) - 1  # the newest turn is sent as it is
        if (static or count > 0) and count > self._refused.get(key, -1):
            estimate = _estimate(static) + _estimate(contents[:count])
            grown = estimate - (best.estimate if best else 0)
            if estimate >= caching.min_tokens and (
                best is None or (count > best.count and grown >= CACHE_GROWTH * best.estimate)
            ):
                fresh = await self._create_cache(
                    key, static, contents[:count], estimate, limit, caching
                )
                if fresh is not None:
                    best, made = fresh, fresh.tokens
        if best is None:
            return body, 0
        cached = {k: v for k, v in body.items() if k not in _STATIC}
        cached["cachedContent"] = best.name
        cached["contents"] = contents[best.count :]
        return cached, made

    async def _create_cache(
        self,
        key: str,
        static: dict[str, Any],
        contents: list[dict[str, Any]],
        estimate: int,
        limit: float,
        caching: ContextCaching,
    ) -> _Cache | None:
        """POST a `cachedContents` resource; None (and a log line) when the API refuses it, e.g.
        below its minimum size: the call then goes without a cache."""
        resource: dict[str, Any] = {
            "model": f"models/{self.config.model}",
            **static,
            "ttl": f"{caching.ttl:g}s",
        }
        if contents:
            resource["contents"] = contents
        http = self._client()
        request = http.build_request(
            "POST",
            self._caches_url,
            content=json.dumps(resource).encode(),
            headers=self._headers,
            timeout=httpx.Timeout(limit),
        )
        started = time.monotonic()
        try:
            response = await http.send(request, stream=True)
            try:
                content = await self._read_capped(response)
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            log.info("gemini.cache_not_created", reason=repr(exc))
            return None
        name, tokens = None, 0
        if response.status_code < 400:
            try:
                data = loads_bounded(content)
            except InvalidJSONError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                name = data["name"]
                tokens = int((data.get("usageMetadata") or {}).get("totalTokenCount") or 0)
        if name is None:
            self._refused[key] = len(contents)
            log.info(
                "gemini.cache_not_created", status=response.status_code, contents=len(contents)
            )
            return None
        cache = _Cache(
            name=name,
            count=len(contents),
            digest=_digest(contents),
            estimate=estimate,
            tokens=tokens,
            expires=started + caching.ttl,
        )
        self._caches.setdefault(key, []).append(cache)
        log.info("gemini.cache_created", cache=name, contents=len(contents), tokens=tokens)
        return cache

    def _forget(self, name: str) -> None:
        for key, caches in self._caches.items():
            self._caches[key] = [cache for cache in caches if cache.name != name]

    def _answer(self, answer: _Answer) -> ModelResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        thinking: list[dict[str, Any]] = []
        finish = None
        if answer.candidates:
            candidate = answer.candidates[0]
            finish = candidate.finishReason
            for part in candidate.content.get("parts") or ():
                if part.get("thought"):
                    thinking.append(dict(part))
                    continue
                if "thoughtSignature" in part:
                    call = part.get("functionCall")
                    on = f"functionCall:{call.get('name', '')}" if call is not None else "text"
                    thinking.append({"thoughtSignature": part["thoughtSignature"], "on": on})
                if "text" in part:
                    texts.append(str(part["text"]))
                elif "functionCall" in part:
                    call = part["functionCall"]
                    calls.append(
                        ToolCall(
                            id=str(call.get("id") or f"call_gemini_{len(calls)}"),
                            name=str(call.get("name", "")),
                            arguments=json.dumps(call.get("args") or {}),
                        )
                    )
        meta = answer.usageMetadata
        prompt = int(meta.get("promptTokenCount") or 0)
        completion = int(meta.get("candidatesTokenCount") or 0) + int(
            meta.get("thoughtsTokenCount") or 0
        )
        read = int(meta.get("cachedContentTokenCount") or 0)
        price = self._price
        reason = (
            "tool_calls" if calls else (_FINISH.get(finish, finish.lower()) if finish else None)
        )
        return ModelResponse(
            content="".join(texts) if texts else None,
            tool_calls=tuple(calls),
            finish_reason=reason,
            model=answer.modelVersion or self.config.model,
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
                cache_read_tokens=read,
            ),
            cost=price.cost(prompt, completion, cache_read_tokens=read) if price else 0.0,
            thinking_blocks=tuple(_merge_thoughts(thinking)),
        )

    def _parse(self, response: httpx.Response, content: bytes) -> ModelResponse:
        answer = self._decode(
            _Answer, content, status=response.status_code, what="a generateContent answer"
        )
        if not answer.candidates:
            raise self._error(
                MalformedResponseError, "the answer has no candidates", status=response.status_code
            )
        return self._answer(answer)

    def _stream_url(self) -> str:
        return f"{self._model_url}:streamGenerateContent?alt=sse"

    def _events(self) -> StreamEvents:
        return _ChunkEvents(self)


class _ChunkEvents(StreamEvents):
    """Partial `GenerateContentResponse`s: parts appended in order, the last chunk's
    `finishReason` and usage taken; thought parts are kept but not streamed as text."""

    def __init__(self, client: GeminiClient) -> None:
        self.client = client
        self.parts: list[dict[str, Any]] = []
        self.last = _Answer()

    def take(self, event: str, data: str, *, status: int | None, delivered: bool) -> str | None:
        chunk = self.client._decode(_Answer, data, status=status, what="a generateContent chunk")
        self.last = chunk
        texts: list[str] = []
        for candidate in chunk.candidates[:1]:
            for part in candidate.content.get("parts") or ():
                self.parts.append(part)
                text = part.get("text")
                if text and not part.get("thought"):
                    texts.append(str(text))
        return "".join(texts) or None

    def finish(self, *, status: int | None, delivered: bool) -> ModelResponse:
        last = self.last
        finish = last.candidates[0].finishReason if last.candidates else None
        if finish is None:
            raise self.client._error(
                StreamInterruptedError,
                "the stream ended before a finishReason",
                status=status,
                retryable=not delivered,
            )
        merged = _Candidate(content={"role": "model", "parts": self.parts}, finishReason=finish)
        whole = _Answer(
            candidates=[merged], usageMetadata=last.usageMetadata, modelVersion=last.modelVersion
        )
        return self.client._answer(whole)


def _merge_thoughts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A streamed answer's thought pieces as one thought part (signatures kept apart)."""
    merged: list[dict[str, Any]] = []
    for part in parts:
        if part.get("thought") and merged and merged[-1].get("thought"):
            last = merged[-1]
            merged[-1] = {
                **last,
                **part,
                "text": str(last.get("text", "")) + str(part.get("text", "")),
            }
        else:
            merged.append(part)
    return merged


def _tool_mode(choice: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice, "AUTO")
        return {"mode": mode}
    name = (choice.get("function") or {}).get("name")
    return {"mode": "ANY", "allowedFunctionNames": [name]} if name else None
