"""The model seam: `ModelRequest` in, `ModelResponse` out, through one `ModelClient.create`."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from types import TracebackType

TokenCallback = Callable[[str], Awaitable[None] | None]
"""Called with each content fragment of a streamed answer, in order; may be sync or async."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts of one call; `+` sums them over many calls.

    `prompt_tokens` counts every prompt token; `cache_read_tokens` and `cache_write_tokens` are
    the parts of it the provider read from or wrote to its prompt cache (priced apart).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """One function call the model asked for; `arguments` is the model's JSON text, unparsed."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire form, as an assistant message's `tool_calls` item."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelResponse:
    """One chat completion: text and/or tool calls, with usage and cost in dollars."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    cached: bool = False
    thinking_blocks: tuple[Mapping[str, Any], ...] = ()

    def to_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation history.

        Anthropic's thinking blocks ride along as `thinking_blocks`, so a tool-use turn can hand
        them back with their signatures, as that API requires.
        """
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.thinking_blocks:
            message["thinking_blocks"] = [dict(block) for block in self.thinking_blocks]
        return message


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRequest:
    """One chat-completion request: the single value every client and wrapper passes along.

    Unset options (None) fall back to the client's config. `timeout` is the overall deadline of
    the call in seconds, retries included. With `stream=True`, `on_token` receives each content
    fragment as it arrives (sync or async).
    """

    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    response_format: Mapping[str, Any] | type[Any] | None = None
    stream: bool = False
    on_token: TokenCallback | None = None
    stop: str | Sequence[str] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None

    def with_options(self, **changes: Any) -> ModelRequest:
        """A copy with `changes` applied (the request itself is frozen)."""
        return dataclasses.replace(self, **changes)


class ModelClient(abc.ABC):
    """A chat-completion client; use it as `async with` or call `aclose()` when done.

    The seam is one method, `create(request)`: wrappers (cache, retry, rate limit, fallback) take a
    client and are clients, so behaviour composes by wrapping, as starlette composes middleware.
    """

    @abc.abstractmethod
    async def create(self, request: ModelRequest) -> ModelResponse:
        """Ask the model for the next assistant message.

        Raises:
            ModelError: a subclass naming the failure, after any retries gave up.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections this client owns; it may be used again afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ClientWrapper(ModelClient):
    """A client around another client (`inner`); by default it passes calls and `aclose` through.

    Subclasses override `create` to add one concern. Closing a wrapper closes what it wraps.
    """

    def __init__(self, inner: ModelClient) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def create(self, request: ModelRequest) -> ModelResponse:
        return await self.inner.create(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
