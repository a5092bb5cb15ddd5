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

from ._types import ModelResponse, ToolCall, Usage

if TYPE_CHECKING:
    from collections.abc import Mapping


def cache_key(endpoint: str, body: Mapping[str, Any], *, seed: int | None = None) -> str:
    """A stable hash of everything that decides the answer: endpoint, request body and seed."""
    payload = {"endpoint": endpoint, "body": body, "seed": seed}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _encode(response: ModelResponse) -> str:
    return json.dumps(dataclasses.asdict(response))


def _decode(text: str) -> ModelResponse:
    data = json.loads(text)
    return ModelResponse(
        content=data["content"],
        tool_calls=tuple(ToolCall(**call) for call in data["tool_calls"]),
        finish_reason=data["finish_reason"],
        model=data["model"],
        usage=Usage(**data["usage"]),
        cost=data["cost"],
        cached=True,
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
