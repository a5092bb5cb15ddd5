"""`ModelClientServer`: any `ModelClient` served as OpenAI-compatible chat completions on loopback.

`moot model serve` runs the embedded model through it. Enough of the API for OpenAI clients and
moot's own: `GET /v1/models`, and `POST /v1/chat/completions` with or without `stream`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from moot.models import (
    AuthenticationError,
    BadRequestError,
    InvalidJSONError,
    ModelError,
    ModelRequest,
    ModelResponse,
    RateLimitError,
    loads_bounded,
)

from ._http import Exchange, LoopbackHTTPServer

if TYPE_CHECKING:
    from moot.models import ModelClient


def _status_of(error: ModelError) -> int:
    if isinstance(error, BadRequestError | InvalidJSONError):
        return 400
    if isinstance(error, AuthenticationError):
        return 401
    if isinstance(error, RateLimitError):
        return 429
    return 500


def _request(body: Any, on_token: Any) -> ModelRequest:
    """The `ModelRequest` of a chat-completions body (refusing what is not one)."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise BadRequestError("the request body must be JSON with a 'messages' list")
    stream = bool(body.get("stream"))
    return ModelRequest(
        messages=body["messages"],
        tools=body.get("tools") or None,
        tool_choice=body.get("tool_choice"),
        response_format=body.get("response_format"),
        stream=stream,
        on_token=on_token if stream else None,
        stop=body.get("stop"),
        temperature=body.get("temperature"),
        max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"),
    )


class ModelClientServer(LoopbackHTTPServer):
    """Serves `client` on 127.0.0.1:`port` (0 picks one) under the model name `model`.

    A model error before the first streamed byte is an HTTP error answer; after it, an error
    event and `[DONE]`, which moot's client reads as a typed error.
    """

    def __init__(self, client: ModelClient, *, model: str, port: int = 0) -> None:
        super().__init__(port=port)
        self.client = client
        self.model = model

    async def handle(self, exchange: Exchange) -> bool:
        method, path = exchange.method, exchange.path.rstrip("/")
        if method == "GET" and path == "/v1/models":
            data = [{"id": self.model, "object": "model", "owned_by": "moot"}]
            await exchange.send_json(200, {"object": "list", "data": data})
        elif method == "POST" and path == "/v1/chat/completions":
            await self._complete(exchange)
        else:
            await exchange.send_error(404, f"no route {method} {path}")
        return True

    async def _complete(self, exchange: Exchange) -> None:
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        base = {"id": ident, "created": int(time.time()), "model": self.model}
        started = False

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            data = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            return f"data: {json.dumps(data)}\n\n".encode()

        async def on_token(piece: str) -> None:
            await exchange.send_chunk(chunk({"content": piece}))

        try:
            request = _request(loads_bounded(exchange.raw or b"{}"), on_token)
            if request.stream:
                await exchange.start_chunks(
                    {"content-type": "text/event-stream", "cache-control": "no-cache"}
                )
                started = True
                await exchange.send_chunk(chunk({"role": "assistant"}))
            response = await self.client.create(request)
        except ModelError as exc:
            status = _status_of(exc)
            if not started:
                await exchange.send_error(status, str(exc))
                return
            error = {"message": str(exc), "type": type(exc).__name__, "code": status}
            await exchange.send_chunk(f"data: {json.dumps({'error': error})}\n\n".encode())
            await exchange.send_chunk(b"data: [DONE]\n\n")
            await exchange.end_chunks()
            return
        if request.stream:
            await exchange.send_chunk(chunk({}, response.finish_reason) + b"data: [DONE]\n\n")
            await exchange.end_chunks()
            return
        await exchange.send_json(200, self._completion(base, response))

    @staticmethod
    def _completion(base: dict[str, Any], response: ModelResponse) -> dict[str, Any]:
        usage = response.usage
        choice = {
            "index": 0,
            "message": response.to_message(),
            "finish_reason": response.finish_reason,
        }
        return {
            **base,
            "object": "chat.completion",
            "choices": [choice],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
