"""What the scripted model server answers: `Reply` values, picked by `Rule`s or in sequence."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request the server received, with its JSON body parsed (None if it had none)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    _: KW_ONLY
    index: int = 0

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a completion request (empty for other requests)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return list(self.body["messages"])
        return []

    @property
    def last_text(self) -> str:
        """The text of the last message, or "" when there is none."""
        messages = self.messages
        if not messages:
            return ""
        content = messages[-1].get("content")
        if isinstance(content, list):  # content parts or blocks: keep the text ones
            return "".join(_part_text(part) for part in content if isinstance(part, dict))
        return "" if content is None else str(content)

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


def _part_text(part: Mapping[str, Any]) -> str:
    inner = part.get("content")  # an Anthropic tool_result block holds text blocks
    if isinstance(inner, list):
        return "".join(_part_text(each) for each in inner if isinstance(each, dict))
    if isinstance(inner, str):
        return inner
    return str(part.get("text", ""))


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer: content and/or tool calls, or an injected failure.

    `tool_calls` items are `{"name": ..., "arguments": dict or JSON text, "id": optional}`.
    `status` >= 400 answers an OpenAI-style error; `hang` never answers; `malformed` sends broken
    JSON; `cut_stream` closes the connection halfway through the answer. Wire faults for the HTTP
    server: `drip` sends the answer one byte every `drip` seconds; `endless` streams tokens
    forever; `stream_error` sends that error object as an event, then `[DONE]` (as vLLM does).
    On the Anthropic route (`/v1/messages`), `thinking` answers a thinking block first and
    `usage` overrides that API's usage keys; on the Gemini route, a `thought` part first (and a
    `thoughtSignature` on the last part), `usage` overriding `usageMetadata` keys.
    """

    content: str | None = None
    _: KW_ONLY
    tool_calls: Sequence[Mapping[str, Any]] = ()
    latency: float = 0.0
    usage: Mapping[str, int] | None = None
    status: int = 200
    error: str | None = None
    error_code: str | None = None
    retry_after: float | None = None
    hang: bool = False
    malformed: bool = False
    cut_stream: bool = False
    finish_reason: str | None = None
    model: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    drip: float = 0.0
    endless: bool = False
    stream_error: Mapping[str, Any] | None = None
    thinking: str | None = None


Responder: TypeAlias = Reply | str | Callable[[RecordedRequest], "Reply | str"]
"""A reply, its content as a shortcut, or a function of the request that makes one."""


@dataclass(slots=True)
class Rule:
    """Answers every request `when` matches (a substring of the last message, or a predicate).

    With `times` set, the rule retires after that many answers.
    """

    when: str | Callable[[RecordedRequest], bool]
    reply: Responder
    times: int | None = None

    def matches(self, request: RecordedRequest) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if isinstance(self.when, str):
            return self.when in request.last_text
        return bool(self.when(request))


def resolve(responder: Responder, request: RecordedRequest) -> Reply:
    """Turn a script entry into the `Reply` for this request."""
    if callable(responder) and not isinstance(responder, Reply):
        responder = responder(request)
    return Reply(responder) if isinstance(responder, str) else responder


def tool_call_dicts(reply: Reply, number: int) -> list[dict[str, Any]]:
    """The reply's tool calls in OpenAI's wire form, with ids filled in."""
    calls = []
    for position, call in enumerate(reply.tool_calls):
        function = call.get("function", call)
        arguments = function.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(
            {
                "id": call.get("id") or f"call_{number}_{position}",
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    return calls


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """What a reply answers, computed once for the HTTP server and the in-process client alike."""

    model: str
    content: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    usage: dict[str, int]


def _words(text: str) -> int:
    return len(text.split())


def completion(reply: Reply, request: RecordedRequest) -> Completion:
    """The answer `reply` gives `request`: ids, finish reason and word-count usage filled in."""
    calls = tool_call_dicts(reply, request.index)
    usage = dict(reply.usage or {})
    if "prompt_tokens" not in usage:
        usage["prompt_tokens"] = sum(_words(str(m.get("content") or "")) for m in request.messages)
    if "completion_tokens" not in usage:
        usage["completion_tokens"] = _words(reply.content or "") + sum(
            _words(c["function"]["arguments"]) for c in calls
        )
    usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
    model = reply.model or str((request.body or {}).get("model") or "scripted")
    return Completion(
        model=model,
        content=reply.content,
        tool_calls=calls,
        finish_reason=reply.finish_reason or ("tool_calls" if calls else "stop"),
        usage=usage,
    )


TOKEN_RE = re.compile(r"\s*\S+|\s+")


def tokens(text: str | None) -> list[str]:
    """How a scripted answer's text is cut into streamed pieces (a word with its leading space)."""
    return TOKEN_RE.findall(text or "")
