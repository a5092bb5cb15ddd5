"""What a model call returns (`ModelResponse`) and the one seam every model client implements."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from types import TracebackType

TokenCallback = Callable[[str], Awaitable[None] | None]
"""Called with each content fragment of a streamed answer, in order; may be sync or async."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts of one call; `+` sums them over many calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
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

    def to_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation history."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        return message


class ModelClient(abc.ABC):
    """A chat-completion client; use it as `async with` or call `aclose()` when done."""

    @abc.abstractmethod
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

        Raises:
            ModelError: a subclass naming the failure, after the retry policy gave up.
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
