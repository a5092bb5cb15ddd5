"""Gemini's `generateContent` wire format for `ScriptedModelServer`
(`POST /v1beta/models/NAME:generateContent`, and `:streamGenerateContent?alt=sse`)."""

from __future__ import annotations

import http
import json
from typing import TYPE_CHECKING, Any

from ._script import RecordedRequest, Reply, tokens, tool_call_dicts

if TYPE_CHECKING:
    from ._http import Exchange

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def is_gemini(path: str) -> bool:
    return path.endswith((":generateContent", ":streamGenerateContent"))


async def send_error(
    exchange: Exchange, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    error = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    await exchange.send_json(status, {"error": error}, headers)


def _prompt_words(body: dict[str, Any]) -> int:
    words = 0
    for content in [body.get("systemInstruction") or {}, *(body.get("contents") or [])]:
        for part in content.get("parts") or []:
            words += len(str(part.get("text") or json.dumps(part)).split())
    return words


def _answer(
    parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int] | None, model: str
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if usage is not None:
        out["usageMetadata"] = usage
    return out


async def answer(exchange: Exchange, request: RecordedRequest, reply: Reply) -> bool:
    """Answer one Gemini request with `reply`; False closes the connection."""
    extra = dict(reply.headers)
    if reply.retry_after is not None:
        extra["retry-after"] = f"{reply.retry_after:g}"
    if reply.status >= 400:
        text = reply.error or http.HTTPStatus(reply.status).phrase
        await send_error(exchange, reply.status, text, extra)
        return True
    body = request.body
    model = reply.model or request.path.split("/models/", 1)[-1].split(":", 1)[0]
    calls = tool_call_dicts(reply, request.index)
    call_parts = [
        {
            "functionCall": {
                "name": c["function"]["name"],
                "args": json.loads(c["function"]["arguments"]),
            }
        }
        for c in calls
    ]
    prompt = _prompt_words(body)
    output = len((reply.content or "").split()) + sum(
        len(c["function"]["arguments"].split()) for c in calls
    )
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
        **(reply.usage or {}),
    }
    finish = reply.finish_reason or "STOP"
    if ":streamGenerateContent" not in request.path:
        parts = ([{"text": reply.content}] if reply.content else []) + call_parts
        await exchange.send_json(200, _answer(parts, finish, usage, model), extra)
        return True
    headers = {"content-type": "text/event-stream", **extra}
    await exchange.start_chunks(headers)
    pieces: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in tokens(reply.content)]
    if call_parts:
        pieces.append(call_parts)
    if not pieces:
        pieces = [[{"text": ""}]]
    for position, parts in enumerate(pieces):
        final = position == len(pieces) - 1
        payload = _answer(parts, finish if final else None, usage if final else None, model)
        await exchange.send_chunk(f"data: {json.dumps(payload)}\r\n\r\n".encode())
    await exchange.end_chunks()
    return True
