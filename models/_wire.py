"""The OpenAI chat-completion wire format, read with pydantic, and assembly of streamed chunks."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from ._types import ToolCall


def _arguments_text(value: Any) -> Any:
    # Some OpenAI-compatible servers send arguments as a JSON object instead of a string.
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else value


_Arguments = Annotated[str, BeforeValidator(_arguments_text)]


class WireFunction(BaseModel):
    name: str = ""
    arguments: _Arguments = ""


class WireToolCall(BaseModel):
    id: str = ""
    function: WireFunction


class WireMessage(BaseModel):
    content: str | None = None
    tool_calls: list[WireToolCall] | None = None


class WireChoice(BaseModel):
    message: WireMessage
    finish_reason: str | None = None


class WireUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None


class WireCompletion(BaseModel):
    model: str = ""
    choices: list[WireChoice] = Field(min_length=1)
    usage: WireUsage | None = None


class WireDeltaFunction(BaseModel):
    name: str | None = None
    arguments: _Arguments | None = None


class WireDeltaToolCall(BaseModel):
    index: int = 0
    id: str | None = None
    function: WireDeltaFunction | None = None


class WireDelta(BaseModel):
    content: str | None = None
    tool_calls: list[WireDeltaToolCall] | None = None


class WireChunkChoice(BaseModel):
    index: int = 0
    delta: WireDelta = Field(default_factory=WireDelta)
    finish_reason: str | None = None


class WireChunk(BaseModel):
    model: str = ""
    choices: list[WireChunkChoice] = Field(default_factory=list)
    usage: WireUsage | None = None
    error: Any = None  # an error event inside a 200 stream (vLLM, then `[DONE]`)


class StreamAssembly:
    """Folds streamed chunks into one message: text, tool calls by index, finish reason, usage."""

    def __init__(self) -> None:
        self.model = ""
        self.parts: list[str] = []
        self.calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        self.finish_reason: str | None = None
        self.usage: WireUsage | None = None

    def add(self, chunk: WireChunk) -> str | None:
        """Take one chunk and return its new text, if any."""
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        text = None
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            if choice.delta.content:
                text = choice.delta.content
                self.parts.append(text)
            for delta in choice.delta.tool_calls or ():
                call = self.calls.setdefault(delta.index, ["", "", ""])
                if delta.id:
                    call[0] = delta.id
                if delta.function is not None:
                    call[1] += delta.function.name or ""
                    call[2] += delta.function.arguments or ""
        return text

    @property
    def content(self) -> str | None:
        return "".join(self.parts) if self.parts else None

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=call_id, name=name, arguments=arguments)
            for _, (call_id, name, arguments) in sorted(self.calls.items())
        )
