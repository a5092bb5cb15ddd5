"""`AnthropicClient`: Anthropic's Messages API over httpx, behind the same seam as `OpenAIClient`.

moot speaks OpenAI-shaped messages everywhere; this module translates them to the Messages API
(system prompt apart, tool calls as `tool_use` / `tool_result` blocks, alternating turns) and
back, and marks the shared prefix with `cache_control` breakpoints so a growing chat is billed
mostly as cache reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pydantic

from ._errors import (
    InvalidJSONError,
    MalformedResponseError,
    ModelError,
    StreamInterruptedError,
    error_for_status,
)
from ._json import loads_bounded
from ._openai import OpenAIClient, StreamEvents
from ._types import ModelRequest, ModelResponse, ToolCall, Usage

if TYPE_CHECKING:
    import httpx

    from ._config import ModelConfig
    from ._http import ConnectionPool

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens; used when nothing sets it
MAX_BREAKPOINTS = 4  # the API accepts at most four cache_control blocks per request
BREAKPOINT_STRIDE = 16  # the API looks about 20 blocks back from a breakpoint for a cached prefix

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
_CACHE = {"type": "ephemeral"}


def anthropic_endpoint(config: ModelConfig) -> tuple[str, str, dict[str, str]]:
    """The base URL, the messages URL and the headers (key, API version) for one entry."""
    base = config.base_url or ANTHROPIC_BASE_URL
    url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
    headers = {
        "content-type": "application/json",
        "anthropic-version": ANTHROPIC_VERSION,
        **config.default_headers,
    }
    key = config.api_key
    if key is None and config.base_url is None:
        key = os.environ.get("ANTHROPIC_API_KEY")
    if key:
        headers["x-api-key"] = key
    return base, url, headers


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (text or parts) as Anthropic content blocks; empty text is dropped."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, Mapping):
            blocks.append({"type": "text", "text": str(part)})
        elif part.get("type") == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                source = {"type": "base64", "media_type": media, "data": data}
            else:
                source = {"type": "url", "url": url}
            blocks.append({"type": "image", "source": source})
        else:  # already an Anthropic block (image, document, ...): pass it through
            blocks.append(dict(part))
    return blocks


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = loads_bounded(arguments) if isinstance(arguments, str) else arguments
    except InvalidJSONError:
        parsed = {"_raw_arguments": arguments}  # keep what the model sent; the API wants an object
    if not isinstance(parsed, dict):
        parsed = {"value": parsed}
    return {
        "type": "tool_use",
        "id": call.get("id", ""),
        "name": function.get("name", ""),
        "input": parsed,
    }


def convert_messages(
    messages: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI-shaped messages as the Messages API's `(system blocks, turns)`.

    Leading system messages become the system prompt; later ones (a group chat's notices) become
    user text. Tool results become `tool_result` blocks in a user turn; consecutive turns of one
    role are merged, since the API wants user and assistant to alternate.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    legacy_ids: list[str] = []  # AutoGen's older `function_call` turns carry no id: make one
    for message in messages:
        role = message.get("role", "user")
        if role in ("system", "developer") and not turns:
            system.extend(_text_blocks(message.get("content")))
            continue
        if role == "assistant":
            blocks = [
                dict(block)
                for block in message.get("thinking_blocks") or ()
                if block.get("type") in ("thinking", "redacted_thinking")  # not Gemini's parts
            ]
            blocks += _text_blocks(message.get("content"))
            blocks += [_tool_use(call) for call in message.get("tool_calls") or ()]
            if message.get("function_call"):
                legacy_ids.append(f"call_legacy_{len(legacy_ids)}")
                legacy = {"id": legacy_ids[-1], "function": message["function_call"]}
                blocks.append(_tool_use(legacy))
            wire_role = "assistant"
        elif role in ("tool", "function"):
            content = message.get("content")
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id")
                or (legacy_ids[-1] if legacy_ids else ""),
                "content": _text_blocks(content if content else "(no output)"),
            }
            blocks = [result]
            wire_role = "user"
        else:
            blocks = _text_blocks(message.get("content"))
            wire_role = "user"
        if not blocks:
            continue
        if turns and turns[-1]["role"] == wire_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": wire_role, "content": blocks})
    if turns and turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": "(continue)"}]})
    return system, turns


def place_breakpoints(system: list[dict[str, Any]], turns: list[dict[str, Any]]) -> None:
    """Mark the shared prefix with `cache_control`: the system prompt's end, the last block,
    and blocks every `BREAKPOINT_STRIDE` back from it (at most four marks in all)."""
    budget = MAX_BREAKPOINTS
    if system:
        system[-1]["cache_control"] = dict(_CACHE)
        budget -= 1
    blocks = [block for turn in turns for block in turn["content"]]
    position = len(blocks) - 1
    while budget and position >= 0:
        block = blocks[position]
        if block.get("type") not in ("thinking", "redacted_thinking"):
            block["cache_control"] = dict(_CACHE)
            budget -= 1
            position -= BREAKPOINT_STRIDE
        else:
            position -= 1


def convert_tools(tools: Any) -> list[dict[str, Any]]:
    """OpenAI `{"type": "function", "function": {...}}` tools as Anthropic tools."""
    out = []
    for tool in tools:
        function = tool.get("function", tool)
        entry: dict[str, Any] = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        out.append(entry)
    return out


def convert_tool_choice(choice: str | Mapping[str, Any]) -> dict[str, Any] | None:
    """`auto` / `none` / `required` / a named function, as Anthropic's tool_choice."""
    if isinstance(choice, str):
        return {
            "auto": {"type": "auto"},
            "none": {"type": "none"},
            "required": {"type": "any"},
        }.get(choice, {"type": "auto"})
    if choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    return dict(choice)


class _Usage(pydantic.BaseModel):
    input_tokens: int | None = 0
    output_tokens: int | None = 0
    cache_creation_input_tokens: int | None = 0
    cache_read_input_tokens: int | None = 0


class _Message(pydantic.BaseModel):
    model: str = ""
    content: list[dict[str, Any]]
    stop_reason: str | None = None
    usage: _Usage = pydantic.Field(default_factory=_Usage)


class AnthropicClient(OpenAIClient):
    """One Anthropic config entry (`api_type="anthropic"`): one Messages API attempt per call.

    It shares the OpenAI client's transport (byte caps, deadline, typed errors) and sits under
    the same retry, rate-limit, fallback and cache wrappers. Prompt caching is automatic.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        http: httpx.AsyncClient | ConnectionPool | None = None,
    ) -> None:
        super().__init__(config, http=http)
        self._base_url, self._url, self._headers = anthropic_endpoint(config)

    def __repr__(self) -> str:
        return f"AnthropicClient(model={self.config.model!r}, base_url={self._base_url!r})"

    def body(self, request: ModelRequest) -> dict[str, Any]:
        """The Messages API body for `request`, breakpoints placed, config defaults filled in."""
        config = self.config
        system, turns = convert_messages(request.messages)
        if request.response_format is not None:
            system.append({"type": "text", "text": _format_instruction(request.response_format)})
        place_breakpoints(system, turns)
        body: dict[str, Any] = {**config.params, "model": config.model, "messages": turns}
        if system:
            body["system"] = system
        max_tokens = config.max_tokens if request.max_tokens is None else request.max_tokens
        body["max_tokens"] = max_tokens or DEFAULT_MAX_TOKENS
        temperature = config.temperature if request.temperature is None else request.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if request.stop is not None:
            stop = request.stop
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if request.tools:
            body["tools"] = convert_tools(request.tools)
            if request.tool_choice is not None:
                choice = convert_tool_choice(request.tool_choice)
                if choice is not None:
                    body["tool_choice"] = choice
        if request.stream:
            body["stream"] = True
        return body

    def _message(self, message: _Message) -> ModelResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        thinking: list[dict[str, Any]] = []
        for block in message.content:
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "tool_use":
                calls.append(
                    ToolCall(
                        id=str(block.get("id", "")),
                        name=str(block.get("name", "")),
                        arguments=json.dumps(block.get("input") or {}),
                    )
                )
            elif kind in ("thinking", "redacted_thinking"):
                thinking.append(block)
        usage = message.usage
        read = usage.cache_read_input_tokens or 0
        write = usage.cache_creation_input_tokens or 0
        prompt = (usage.input_tokens or 0) + read + write
        completion = usage.output_tokens or 0
        price = self._price
        reason = message.stop_reason
        return ModelResponse(
            content="".join(texts) if texts else None,
            tool_calls=tuple(calls),
            finish_reason=_STOP_REASONS.get(reason, reason) if reason else None,
            model=message.model or self.config.model,
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
                cache_read_tokens=read,
                cache_write_tokens=write,
            ),
            cost=price.cost(prompt, completion, cache_read_tokens=read, cache_write_tokens=write)
            if price
            else 0.0,
            thinking_blocks=tuple(thinking),
        )

    def _parse(self, response: httpx.Response, content: bytes) -> ModelResponse:
        message = self._decode(
            _Message, content, status=response.status_code, what="a Messages API answer"
        )
        return self._message(message)

    def _event_error(self, data: Any, status: int | None, delivered: bool) -> ModelError:
        """The typed error for an `error` event (e.g. `overloaded_error` inside a 200 stream)."""
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {"message": str(data)}
        kind = str(error.get("type") or "")
        code = _ERROR_STATUS.get(kind)
        message = f"the stream sent an error: {str(error.get('message') or error)[:500]}"
        if code is None:
            return self._error(
                StreamInterruptedError, message, status=status, retryable=not delivered
            )
        found = error_for_status(
            code,
            f"{message} (model {self.config.model!r} at {self._base_url})",
            code=kind,
            model=self.config.model,
            base_url=self._base_url,
        )
        found.retryable = found.retryable and not delivered
        return found

    def _events(self) -> StreamEvents:
        return _MessageEvents(self)


class _MessageEvents(StreamEvents):
    """The Messages API's events up to `message_stop`; an `error` event is a typed error."""

    def __init__(self, client: AnthropicClient) -> None:
        self.client = client
        self.assembly = _StreamAssembly()

    def take(self, event: str, data: str, *, status: int | None, delivered: bool) -> str | None:
        client = self.client
        try:
            parsed = loads_bounded(data)
        except InvalidJSONError as exc:
            raise client._error(
                MalformedResponseError,
                f"not a Messages API event: {data[:200]!r}",
                status=status,
            ) from exc
        if not isinstance(parsed, dict):
            raise client._error(
                MalformedResponseError, f"not an event: {data[:200]!r}", status=status
            )
        if parsed.get("type") == "error":
            raise client._event_error(parsed, status, delivered)
        text = self.assembly.add(parsed)
        self.done = self.assembly.stopped
        return text

    def finish(self, *, status: int | None, delivered: bool) -> ModelResponse:
        if not self.assembly.stopped:
            raise self.client._error(
                StreamInterruptedError,
                "the stream ended before message_stop",
                status=status,
                retryable=not delivered,
            )
        return self.client._message(self.assembly.message())


class _StreamAssembly:
    """Folds the Messages API's events into one message: blocks by index, usage, stop reason."""

    def __init__(self) -> None:
        self.model = ""
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, list[str]] = {}
        self.usage: dict[str, int] = {}
        self.stop_reason: str | None = None
        self.stopped = False

    def add(self, event: dict[str, Any]) -> str | None:
        """Take one event; return the text it adds, if any."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.model = str(message.get("model") or "")
            self.usage.update({k: v for k, v in (message.get("usage") or {}).items() if v})
        elif kind == "content_block_start":
            self.blocks[int(event.get("index", 0))] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            index = int(event.get("index", 0))
            block = self.blocks.setdefault(index, {"type": "text", "text": ""})
            delta = event.get("delta") or {}
            match delta.get("type"):
                case "text_delta":
                    text = str(delta.get("text", ""))
                    block["text"] = str(block.get("text", "")) + text
                    return text
                case "input_json_delta":
                    self.partial_json.setdefault(index, []).append(
                        str(delta.get("partial_json", ""))
                    )
                case "thinking_delta":
                    block["thinking"] = str(block.get("thinking", "")) + str(
                        delta.get("thinking", "")
                    )
                case "signature_delta":
                    block["signature"] = str(delta.get("signature", ""))
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v})
        elif kind == "message_stop":
            self.stopped = True
        return None

    def message(self) -> _Message:
        blocks = []
        for index, block in sorted(self.blocks.items()):
            if block.get("type") == "tool_use" and index in self.partial_json:
                text = "".join(self.partial_json[index])
                block["input"] = loads_bounded(text) if text else {}
            blocks.append(block)
        return _Message(
            model=self.model,
            content=blocks,
            stop_reason=self.stop_reason,
            usage=_Usage.model_validate(self.usage),
        )


def _format_instruction(value: Mapping[str, Any] | type[Any]) -> str:
    """The Messages API has no response_format: say the schema in the system prompt instead."""
    if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
        schema: Any = value.model_json_schema()
    else:
        schema = (
            (value.get("json_schema") or {}).get("schema") if isinstance(value, Mapping) else None
        )
    if schema is None:
        return "Answer with one JSON object and nothing else."
    return (
        "Answer with one JSON object matching this JSON schema, and nothing else:\n"
        + json.dumps(schema)
    )
