"""Opt-in response cache keyed by the full request; nothing is cached or written unless asked."""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pydantic

from moot import observability

from ._json import loads_bounded
from ._tracing import trace_cache_hit
from ._types import ClientWrapper, ModelResponse, ToolCall, Usage

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._types import ModelClient, ModelRequest


def cache_key(endpoint: str, body: Mapping[str, Any], *, seed: int | None = None) -> str:
    """A stable hash of everything that decides the answer: endpoint, request body and seed."""
    payload = {"endpoint": endpoint, "body": body, "seed": seed}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _encode(response: ModelResponse) -> str:
    return json.dumps(dataclasses.asdict(response))


def _decode(text: str) -> ModelResponse:
    data = loads_bounded(text)
    return ModelResponse(
        content=data["content"],
        tool_calls=tuple(ToolCall(**call) for call in data["tool_calls"]),
        finish_reason=data["finish_reason"],
        model=data["model"],
        usage=Usage(**data["usage"]),
        cost=data["cost"],
        cached=True,
        thinking_blocks=tuple(data.get("thinking_blocks") or ()),
    )


class ResponseCache(abc.ABC):
    """Where cached responses live; a hit comes back with `cached=True`."""

    @abc.abstractmethod
    async def get(self, key: str) -> ModelResponse | None:
        """The stored response for `key`, or None."""

    @abc.abstractmethod
    async def set(self, key: str, response: ModelResponse) -> None:
        """Store `response` under `key`."""


class InMemoryCache(ResponseCache):
    """A bounded least-recently-used cache in this process."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: OrderedDict[str, ModelResponse] = OrderedDict()
        self._max_entries = max_entries

    async def get(self, key: str) -> ModelResponse | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return dataclasses.replace(found, cached=True)

    async def set(self, key: str, response: ModelResponse) -> None:
        self._entries[key] = response
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class DiskCache(ResponseCache):
    """One JSON file per request under `directory`, created on the first write."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def _read(self, key: str) -> str | None:
        try:
            return self._path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _write(self, key: str, text: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)

    async def get(self, key: str) -> ModelResponse | None:
        text = await anyio.to_thread.run_sync(self._read, key)
        if text is None:
            return None
        try:
            return _decode(text)
        except (ValueError, KeyError, TypeError):
            return None  # a damaged entry is a miss; the next answer overwrites it

    async def set(self, key: str, response: ModelResponse) -> None:
        await anyio.to_thread.run_sync(self._write, key, _encode(response))


def request_key(scope: Any, request: ModelRequest, *, seed: int | None = None) -> str:
    """The cache key of `request` sent to what `scope` names (endpoints, models, settings).

    A streamed and a plain call ask the same question, so `stream`, `on_token` and `timeout`
    are left out: one entry serves both.
    """
    response_format = request.response_format
    if isinstance(response_format, type) and issubclass(response_format, pydantic.BaseModel):
        response_format = response_format.model_json_schema()
    body = {
        "messages": [dict(message) for message in request.messages],
        "tools": [dict(tool) for tool in request.tools or ()],
        "tool_choice": request.tool_choice,
        "response_format": response_format,
        "stop": request.stop,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    return cache_key(json.dumps(scope, sort_keys=True, default=str), body, seed=seed)


class CachingClient(ClientWrapper):
    """Answers a request seen before from `cache`, else asks `inner` and stores the answer.

    `scope` names what stands behind `inner` (its endpoints and settings), so two stacks that
    would answer differently never share an entry. A hit streams its text as one token.
    """

    def __init__(
        self,
        inner: ModelClient,
        cache: ResponseCache,
        *,
        scope: Any = None,
        seed: int | None = None,
        traced_as: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(inner)
        self.cache = cache
        self._scope = scope
        self._seed = seed
        self._traced_as = traced_as  # (model, provider) of a hit's `chat {model}` span

    async def create(self, request: ModelRequest) -> ModelResponse:
        key = request_key(self._scope, request, seed=self._seed)
        hit = await self.cache.get(key)
        if hit is not None:
            if observability.SWITCH.active:
                model, provider = self._traced_as or (None, None)
                trace_cache_hit(hit, model=model, provider=provider)
            if request.on_token is not None and hit.content:
                delivered = request.on_token(hit.content)
                if delivered is not None:
                    await delivered
            return hit
        response = await self.inner.create(request)
        await self.cache.set(key, response)
        return response
