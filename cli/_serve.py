"""`moot model serve`: the embedded model as an OpenAI-compatible chat-completions API on loopback.

Enough of the API for OpenAI clients and moot's own: `GET /v1/models`, and
`POST /v1/chat/completions` with or without `stream` (server-sent events). HTTP/1.1, one request
per connection, 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from moot.models import LOCAL_MODEL_NAME, BadRequestError, LocalModelClient

from ._errors import ExitCode, MissingError

if TYPE_CHECKING:
    from ._output import Output

MAX_BODY = 4 << 20


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > MAX_BODY:
        raise BadRequestError("request body too large", status=413)
    body = await reader.readexactly(length) if length else b""
    return method, path, body


def _response(status: int, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
    return (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _error(status: int, message: str) -> bytes:
    return _response(status, {"error": {"message": message, "type": "invalid_request_error"}})


class ModelServer:
    """Serves one `LocalModelClient`; `await server.start(port)`, then `serve_forever()`."""

    def __init__(self, client: LocalModelClient) -> None:
        self.client = client

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, body = await _read_request(reader)
            if method == "GET" and path.rstrip("/") == "/v1/models":
                models = [{"id": LOCAL_MODEL_NAME, "object": "model", "owned_by": "moot"}]
                writer.write(_response(200, {"object": "list", "data": models}))
            elif method == "POST" and path.rstrip("/") == "/v1/chat/completions":
                await self._complete(json.loads(body or b"{}"), writer)
            else:
                writer.write(_error(404, f"no route {method} {path}"))
        except (ValueError, KeyError, TypeError) as exc:
            writer.write(_error(400, str(exc)))
        except Exception as exc:
            writer.write(_error(500, f"{type(exc).__name__}: {exc}"))
        finally:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()

    async def _complete(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        messages = request["messages"]
        if not isinstance(messages, list):
            raise BadRequestError("messages must be a list", status=400)
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        stream = bool(request.get("stream"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": LOCAL_MODEL_NAME,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        async def on_token(piece: str) -> None:
            writer.write(chunk({"content": piece}))
            await writer.drain()

        if stream:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
            )
            writer.write(chunk({"role": "assistant"}))
        response = await self.client.create(
            messages,
            stream=stream,
            on_token=on_token if stream else None,
            stop=request.get("stop"),
            temperature=request.get("temperature"),
            max_tokens=request.get("max_tokens") or request.get("max_completion_tokens"),
        )
        if stream:
            writer.write(chunk({}, response.finish_reason) + b"data: [DONE]\n\n")
            return
        usage = response.usage
        writer.write(
            _response(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": LOCAL_MODEL_NAME,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": response.content},
                            "finish_reason": response.finish_reason,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.total_tokens,
                    },
                },
            )
        )


def serve(port: int, out: Output) -> ExitCode:
    """Run the server until Ctrl-C."""
    from moot.models import cached_model

    if cached_model() is None:
        raise MissingError("the embedded model is not cached", hint="run `moot model fetch`")

    async def run() -> None:
        client = LocalModelClient()
        server = await asyncio.start_server(ModelServer(client).handle, "127.0.0.1", port)
        out.say(f"serving {LOCAL_MODEL_NAME} at http://127.0.0.1:{port}/v1 (Ctrl-C stops)")
        try:
            async with server:
                await server.serve_forever()
        finally:
            await client.aclose()

    asyncio.run(run())
    return ExitCode.OK
