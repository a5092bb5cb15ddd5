"""Anthropic's Messages API wire format for `ScriptedModelServer` (`POST /v1/messages`).

Answers whole or as server-sent events (message_start, content_block_start/delta/stop,
message_delta, message_stop, error), and bills prompt tokens the way the real API does for
`cache_control` breakpoints: a prefix written at a breakpoint is read back by a later request
whose breakpoint sits at most 20 blocks after it.
"""

from __future__ import annotations

import hashlib
import http
import json
from typing import TYPE_CHECKING, Any

import anyio

from ._script import RecordedRequest, Reply, tokens, tool_call_dicts

if TYPE_CHECKING:
    from ._http import Exchange

LOOKBACK = 20  # blocks the API checks before a breakpoint for an earlier cached prefix

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _words(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value)
    return max(1, len(text.split()))


def _units(body: dict[str, Any]) -> list[tuple[str, int, bool]]:
    """The cacheable prefix as (identity, tokens, has a breakpoint), in the API's order:
    tools, system, then each message's blocks."""
    units: list[tuple[str, int, bool]] = []

    def unit(prefix: str, block: Any) -> tuple[str, int, bool]:
        if not isinstance(block, dict):
            return prefix + json.dumps(block), _words(block), False
        bare = {key: value for key, value in block.items() if key != "cache_control"}
        payload = bare.get("text") or bare.get("content") or bare.get("input") or bare
        return prefix + json.dumps(bare, sort_keys=True), _words(payload), "cache_control" in block

    tools = body.get("tools") or []
    for tool in tools:
        units.append(unit("tool:", tool))
    system = body.get("system")
    if isinstance(system, str):
        units.append(("system:" + system, _words(system), False))
    elif isinstance(system, list):
        units += [unit("system:", block) for block in system]
    for message in body.get("messages") or []:
        role = str(message.get("role"))
        content = message.get("content")
        if isinstance(content, str):
            units.append((role + ":" + content, _words(content), False))
        else:
            units += [unit(role + ":", block) for block in content or []]
    return units


class PromptCache:
    """The prefixes written at breakpoints, per model; `bill` says what a request pays."""

    def __init__(self) -> None:
        self._written: set[str] = set()

    def bill(self, body: dict[str, Any]) -> dict[str, int]:
        units = _units(body)
        digest = hashlib.sha256(str(body.get("model")).encode())
        chain = []
        for identity, _, _ in units:
            digest.update(identity.encode())
            chain.append(digest.copy().hexdigest())
        breakpoints = [index for index, (_, _, marked) in enumerate(units) if marked]
        read_upto = 0
        for point in breakpoints:
            for index in range(point, max(-1, point - LOOKBACK - 1), -1):
                if chain[index] in self._written:
                    read_upto = max(read_upto, index + 1)
                    break
        write_upto = max(breakpoints, default=-1) + 1
        sizes = [size for _, size, _ in units]
        read = sum(sizes[:read_upto])
        write = sum(sizes[read_upto:write_upto]) if write_upto > read_upto else 0
        self._written.update(chain[point] for point in breakpoints)
        return {
            "input_tokens": sum(sizes) - read - write,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
        }


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


async def send_error(
    exchange: Exchange, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    await exchange.send_json(status, error_body(status, message), headers)


def message_body(reply: Reply, request: RecordedRequest, cache: PromptCache) -> dict[str, Any]:
    """The whole Messages API answer `reply` gives `request`."""
    body = request.body
    content: list[dict[str, Any]] = []
    if reply.thinking is not None:
        content.append(
            {"type": "thinking", "thinking": reply.thinking, "signature": f"sig-{request.index}"}
        )
    if reply.content:
        content.append({"type": "text", "text": reply.content})
    calls = tool_call_dicts(reply, request.index)
    for call in calls:
        content.append(
            {
                "type": "tool_use",
                "id": call["id"].replace("call_", "toolu_", 1),
                "name": call["function"]["name"],
                "input": json.loads(call["function"]["arguments"]),
            }
        )
    usage: dict[str, int] = cache.bill(body)
    usage["output_tokens"] = (len((reply.content or "").split())) + sum(
        _words(call["function"]["arguments"]) for call in calls
    )
    usage.update(reply.usage or {})
    return {
        "id": f"msg_scripted_{request.index}",
        "type": "message",
        "role": "assistant",
        "model": reply.model or str(body.get("model") or "scripted"),
        "content": content,
        "stop_reason": reply.finish_reason or ("tool_use" if calls else "end_turn"),
        "stop_sequence": None,
        "usage": usage,
    }


def _sse(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()


def stream_events(message: dict[str, Any]) -> list[bytes]:
    """The event sequence of a streamed answer, as the Messages API sends it."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**usage, "output_tokens": 1}
    events = [_sse("message_start", {"type": "message_start", "message": start})]
    events.append(_sse("ping", {"type": "ping"}))
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        deltas: list[dict[str, Any]]
        opening: dict[str, Any]
        if kind == "text":
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in tokens(block["text"])]
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": piece} for piece in tokens(block["thinking"])
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            text = json.dumps(block["input"])
            half = len(text) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in (text[:half], text[half:])
            ]
        events.append(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        events += [
            _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


async def answer(
    exchange: Exchange, request: RecordedRequest, reply: Reply, cache: PromptCache
) -> bool:
    """Answer one `/v1/messages` request with `reply`; False closes the connection."""
    if reply.latency:
        await anyio.sleep(reply.latency)
    if reply.hang:
        await exchange.wait_for_disconnect()
        return False
    extra = {"request-id": f"req_scripted_{request.index}", **reply.headers}
    if reply.retry_after is not None:
        extra["retry-after"] = f"{reply.retry_after:g}"
    if reply.status >= 400:
        text = reply.error or http.HTTPStatus(reply.status).phrase
        await send_error(exchange, reply.status, text, extra)
        return True
    if reply.malformed:
        await exchange.send(200, b'{"id": "broken", "content": [', extra)
        return True
    message = message_body(reply, request, cache)
    if not request.stream:
        await exchange.send_json(200, message, extra)
        return True
    headers = {"content-type": "text/event-stream", "cache-control": "no-cache", **extra}
    await exchange.start_chunks(headers)
    events = stream_events(message)
    if reply.stream_error is not None:
        events = [events[0], _sse("error", {"type": "error", "error": dict(reply.stream_error)})]
    elif reply.cut_stream:
        events = events[: max(2, len(events) // 2)]
    for event in events:
        await exchange.send_chunk(event)
    if reply.cut_stream:
        return False
    await exchange.end_chunks()
    return True
