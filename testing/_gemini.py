"""Gemini's `generateContent` wire format for `ScriptedModelServer`
(`POST /v1beta/models/NAME:generateContent`, and `:streamGenerateContent?alt=sse`), with explicit
context caching (`/v1beta/cachedContents`: create, get, list, delete) billed as the API does: a
request naming `cachedContent` pays for the cache's tokens as `cachedContentTokenCount`."""

from __future__ import annotations

import http
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
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


def is_cache(path: str) -> bool:
    return "/cachedContents" in path


_STATIC = ("systemInstruction", "tools", "toolConfig")


def _rfc3339(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}Z"


@dataclass
class ContextCache:
    """The server's `cachedContents`: name -> the resource, with its token count (words)."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    created: int = 0
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        ttl = str(body.get("ttl") or "3600s").removesuffix("s")
        now = time.time()
        name = f"cachedContents/scripted-{next(self._serial)}"
        model = str(body["model"])
        resource = {
            "name": name,
            "model": model if model.startswith("models/") else f"models/{model}",
            "displayName": str(body.get("displayName") or ""),
            "createTime": _rfc3339(now),
            "updateTime": _rfc3339(now),
            "expireTime": _rfc3339(now + float(ttl)),
            "usageMetadata": {"totalTokenCount": _prompt_words(body)},
        }
        with self._lock:
            self.entries[name] = {
                **resource,
                **{k: body[k] for k in (*_STATIC, "contents") if k in body},
            }
            self.tokens[name] = _prompt_words(body)
            self.created += 1
        return resource

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.entries.get(name)

    def delete(self, name: str) -> bool:
        with self._lock:
            self.tokens.pop(name, None)
            return self.entries.pop(name, None) is not None

    def public(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The resource as the API shows it (its contents are not sent back)."""
        return {k: v for k, v in entry.items() if k not in (*_STATIC, "contents")}


async def answer_cache(exchange: Exchange, request: RecordedRequest, cache: ContextCache) -> bool:
    """Serve `/v1beta/cachedContents[/NAME]`: POST creates, GET reads or lists, DELETE deletes."""
    path = request.path.split("?", 1)[0]
    name = (
        "cachedContents/" + path.split("/cachedContents/", 1)[1]
        if "/cachedContents/" in path
        else ""
    )
    body = request.body
    if request.method == "POST" and not name:
        if not isinstance(body, dict) or not body.get("model"):
            await send_error(exchange, 400, "model: a model name is required")
            return True
        await exchange.send_json(200, cache.create(body))
        return True
    if request.method == "GET" and not name:
        listed = [cache.public(entry) for entry in list(cache.entries.values())]
        await exchange.send_json(200, {"cachedContents": listed})
        return True
    entry = cache.get(name)
    if entry is None:
        await send_error(exchange, 403, "CachedContent not found (or permission denied)")
        return True
    if request.method == "DELETE":
        cache.delete(name)
        await exchange.send_json(200, {})
        return True
    await exchange.send_json(200, cache.public(entry))
    return True


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


async def answer(
    exchange: Exchange, request: RecordedRequest, reply: Reply, cache: ContextCache
) -> bool:
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
    cached = 0
    name = body.get("cachedContent")
    if name is not None:
        entry = cache.get(str(name))
        if entry is None:
            await send_error(exchange, 403, "CachedContent not found (or permission denied)")
            return True
        if any(key in body for key in _STATIC):
            await send_error(
                exchange,
                400,
                "CachedContent can not be used with GenerateContent request setting"
                " system_instruction, tools or tool_config.",
            )
            return True
        if entry["model"] != f"models/{model}" and reply.model is None:
            await send_error(exchange, 400, "the cached content was made for another model")
            return True
        cached = cache.tokens[str(name)]
        prompt += cached
    output = len((reply.content or "").split()) + sum(
        len(c["function"]["arguments"].split()) for c in calls
    )
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
        **({"cachedContentTokenCount": cached} if cached else {}),
        **(reply.usage or {}),
    }
    thought: list[dict[str, Any]] = (
        [{"text": reply.thinking, "thought": True}] if reply.thinking is not None else []
    )
    if thought:
        usage["thoughtsTokenCount"] = len(reply.thinking.split()) if reply.thinking else 0
    signature = {"thoughtSignature": f"sig-{request.index}"} if thought else {}
    finish = reply.finish_reason or "STOP"
    if ":streamGenerateContent" not in request.path:
        parts: list[dict[str, Any]] = [{"text": reply.content}] if reply.content else []
        parts += call_parts
        if parts and signature:
            parts[-1] = {**parts[-1], **signature}
        await exchange.send_json(200, _answer(thought + parts, finish, usage, model), extra)
        return True
    headers = {"content-type": "text/event-stream", **extra}
    await exchange.start_chunks(headers)
    pieces: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in tokens(reply.content)]
    if call_parts:
        pieces.append(call_parts)
    if not pieces:
        pieces = [[{"text": ""}]]
    if signature:
        pieces[-1][-1] = {**pieces[-1][-1], **signature}
    if thought:
        pieces.insert(0, thought)
    for position, parts in enumerate(pieces):
        final = position == len(pieces) - 1
        payload = _answer(parts, finish if final else None, usage if final else None, model)
        await exchange.send_chunk(f"data: {json.dumps(payload)}\r\n\r\n".encode())
    await exchange.end_chunks()
    return True
