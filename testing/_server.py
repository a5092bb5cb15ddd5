"""`ScriptedModelServer`: a real OpenAI-compatible HTTP/1.1 server on loopback, run by a script."""

from __future__ import annotations

import http
import json
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from moot.models import InvalidJSONError, loads_bounded

from . import _anthropic, _gemini
from ._http import CLOSED, Exchange, LoopbackHTTPServer, head
from ._script import RecordedRequest, Reply, Responder, Rule, completion, resolve, tokens

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

WIRE_DEPTH = 512  # request bodies come from clients under test: deep schemas are fine

ENDLESS_PIECE = "and so on " * 100
"""What an `endless` stream repeats in each event (about a kilobyte)."""


class ScriptedModelServer(LoopbackHTTPServer):
    """An OpenAI-compatible chat-completions server on 127.0.0.1 for tests, ours and users'.

    It also speaks Anthropic's Messages API on `POST /v1/messages` (point the `anthropic` SDK's
    `base_url` at `root_url`), billing prompt-cache reads from the `cache_control` breakpoints
    it sees, as that API does for a repeated prefix; and Gemini's `generateContent` with
    explicit `cachedContents` (point the `google-genai` SDK's `base_url` at `root_url`).

    Each request is answered by the first matching `Rule`, else the next `script` entry, else
    `default`; when none is left it answers HTTP 500 naming the problem, so the test fails loudly.
    Use `async with` in one task, or plain `with` to run it on a background thread.
    """

    def __init__(
        self,
        script: Iterable[Responder] = (),
        *,
        rules: Sequence[Rule] = (),
        default: Responder | None = None,
        models: Sequence[str] = ("scripted",),
    ) -> None:
        super().__init__()
        self._script: deque[Responder] = deque(script)
        self.rules = list(rules)
        self.default = default
        self.models = tuple(models)
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.prompt_cache = _anthropic.PromptCache()
        self.context_cache = _gemini.ContextCache()

    def anthropic_config_list(
        self, model: str = "claude-scripted", **extra: Any
    ) -> list[dict[str, Any]]:
        """A one-entry `config_list` for moot's `AnthropicClient`, pointing at this server."""
        return [
            {
                "model": model,
                "api_type": "anthropic",
                "base_url": self.root_url,
                "api_key": "scripted",
                **extra,
            }
        ]

    def gemini_config_list(
        self, model: str = "gemini-scripted", **extra: Any
    ) -> list[dict[str, Any]]:
        """A one-entry `config_list` for moot's `GeminiClient`, pointing at this server."""
        return [
            {
                "model": model,
                "api_type": "gemini",
                "base_url": self.root_url,
                "api_key": "scripted",
                **extra,
            }
        ]

    def config_list(self, model: str = "scripted", **extra: Any) -> list[dict[str, Any]]:
        """A one-entry AutoGen `config_list` pointing at this server."""
        return [{"model": model, "base_url": self.base_url, "api_key": "scripted", **extra}]

    # -- the script ------------------------------------------------------------------------------

    def push(self, *entries: Responder) -> None:
        """Append entries to the sequence script."""
        with self._lock:
            self._script.extend(entries)

    @property
    def pending(self) -> int:
        """How many sequence entries have not been used yet."""
        return len(self._script)

    def assert_script_consumed(self) -> None:
        """Fail (AssertionError) if sequence entries are left or a request found no reply."""
        assert not self.errors, "; ".join(self.errors)
        assert not self._script, f"{len(self._script)} scripted replies were never requested"

    def _pick(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(request):
                    if rule.times is not None:
                        rule.times -= 1
                    return resolve(rule.reply, request)
            if self._script:
                return resolve(self._script.popleft(), request)
        if self.default is not None:
            return resolve(self.default, request)
        return None

    # -- HTTP ------------------------------------------------------------------------------------

    async def handle(self, exchange: Exchange) -> bool:
        try:
            body = loads_bounded(exchange.raw, max_depth=WIRE_DEPTH) if exchange.raw else None
        except InvalidJSONError:
            body = None
        method, path = exchange.method, exchange.path
        with self._lock:
            request = RecordedRequest(
                method, exchange.target, exchange.headers, body, index=len(self.requests)
            )
            self.requests.append(request)
        self._notify()
        if method == "GET" and path.endswith("/models"):
            data = [{"id": name, "object": "model", "owned_by": "moot"} for name in self.models]
            await exchange.send_json(200, {"object": "list", "data": data})
            return True
        if _gemini.is_cache(path):
            return await _gemini.answer_cache(exchange, request, self.context_cache)
        anthropic = method == "POST" and path.endswith("/v1/messages")
        if anthropic and not (isinstance(body, dict) and isinstance(body.get("messages"), list)):
            await _anthropic.send_error(exchange, 400, "messages: a list is required")
            return True
        gemini = method == "POST" and _gemini.is_gemini(path)
        if gemini and not (isinstance(body, dict) and isinstance(body.get("contents"), list)):
            await _gemini.send_error(exchange, 400, "contents: a list is required")
            return True
        openai = method == "POST" and path.endswith("/chat/completions")
        if not (anthropic or gemini or openai):
            await exchange.send_error(404, f"ScriptedModelServer has no route {method} {path}")
            return True
        if openai and not (isinstance(body, dict) and isinstance(body.get("messages"), list)):
            await exchange.send_error(400, "the request body must be JSON with a 'messages' list")
            return True
        try:
            reply = self._pick(request)
        except Exception as exc:  # a test's responder failed: answer loudly, keep serving
            problem = (
                f"ScriptedModelServer: the responder for request #{request.index} raised {exc!r}"
            )
            self.errors.append(problem)
            await exchange.send_error(500, problem, code="scripted_error")
            return True
        if reply is None:
            problem = (
                f"ScriptedModelServer: the script has no reply left for request #{request.index}"
                f" (last message: {request.last_text[:80]!r})"
            )
            self.errors.append(problem)
            await exchange.send_error(500, problem, code="scripted_error")
            return True
        try:
            if anthropic:
                return await _anthropic.answer(exchange, request, reply, self.prompt_cache)
            if gemini:
                return await _gemini.answer(exchange, request, reply, self.context_cache)
            return await self._answer(exchange, request, reply)
        except CLOSED:
            self.disconnects += 1
            self._notify()
            raise

    async def _answer(self, exchange: Exchange, request: RecordedRequest, reply: Reply) -> bool:
        if reply.latency:
            await anyio.sleep(reply.latency)
        if reply.hang:
            await exchange.wait_for_disconnect()
            return False
        extra = dict(reply.headers)
        if reply.retry_after is not None:
            extra["retry-after"] = f"{reply.retry_after:g}"
        if reply.status >= 400:
            text = reply.error or http.HTTPStatus(reply.status).phrase
            code = reply.error_code or ("rate_limit_exceeded" if reply.status == 429 else None)
            await exchange.send_error(reply.status, text, extra, code=code or "scripted_error")
            return True
        if reply.malformed:
            await exchange.send(200, b'{"id": "broken", "choices": [', extra)
            return True
        answer = completion(reply, request)
        base = {
            "id": f"chatcmpl-scripted-{request.index}",
            "created": int(time.time()),
            "model": answer.model,
        }
        if request.stream:
            return await self._stream(exchange, request, reply, base, answer.usage, extra)
        message: dict[str, Any] = {"role": "assistant", "content": answer.content}
        if answer.tool_calls:
            message["tool_calls"] = answer.tool_calls
        payload = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason}],
            "usage": answer.usage,
        }
        data = json.dumps(payload).encode()
        if reply.cut_stream:
            headers = {"content-type": "application/json", **extra}
            await exchange.stream.send(head(200, headers, len(data)) + data[: len(data) // 2])
            return False
        if reply.drip:
            headers = {"content-type": "application/json", **extra}
            await exchange.stream.send(head(200, headers, len(data)))
            for byte in data:
                await anyio.sleep(reply.drip)
                await exchange.stream.send(bytes([byte]))
            return True
        await exchange.send(200, data, extra)
        return True

    async def _stream(
        self,
        exchange: Exchange,
        request: RecordedRequest,
        reply: Reply,
        base: dict[str, Any],
        usage: dict[str, int],
        extra: dict[str, str],
    ) -> bool:
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache", **extra}
        await exchange.start_chunks(headers)
        if reply.endless:
            piece = _event(
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {"index": 0, "delta": {"content": ENDLESS_PIECE}, "finish_reason": None}
                    ],
                }
            )
            while True:
                await exchange.send_chunk(piece)
        if reply.stream_error is not None:
            first = {"index": 0, "delta": {"role": "assistant", "content": ""}}
            await exchange.send_chunk(_event({**base, "choices": [first]}))
            await exchange.send_chunk(_event({"error": dict(reply.stream_error)}))
            await exchange.send_chunk(b"data: [DONE]\n\n")
            await exchange.end_chunks()
            return True
        answer = completion(reply, request)
        chunks = _stream_chunks(base, answer.content, answer.tool_calls, answer.finish_reason)
        options = request.body.get("stream_options") or {}
        if options.get("include_usage"):
            chunks.append(
                {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        events = [*map(_event, chunks), b"data: [DONE]\n\n"]
        if reply.cut_stream:
            events = events[: max(2, len(events) // 2)]
        for event in events:
            if reply.drip:
                for byte in event:
                    await anyio.sleep(reply.drip)
                    await exchange.send_chunk(bytes([byte]))
            else:
                await exchange.send_chunk(event)
        if reply.cut_stream:
            return False  # close without the final empty chunk: the client sees a broken stream
        await exchange.end_chunks()
        return True


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _stream_chunks(
    base: dict[str, Any], content: str | None, calls: list[dict[str, Any]], finish: str
) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in tokens(content)]
    for position, call in enumerate(calls):
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        half = len(arguments) // 2
        first: dict[str, Any] = {"index": position, "id": call["id"], "type": "function"}
        first["function"] = {"name": name, "arguments": ""}
        deltas.append({"tool_calls": [first]})
        for piece in (arguments[:half], arguments[half:]):
            deltas.append({"tool_calls": [{"index": position, "function": {"arguments": piece}}]})
    choices: list[list[dict[str, Any]]] = [
        [{"index": 0, "delta": delta, "finish_reason": None}] for delta in deltas
    ]
    choices.append([{"index": 0, "delta": {}, "finish_reason": finish}])
    return [{**base, "object": "chat.completion.chunk", "choices": each} for each in choices]
