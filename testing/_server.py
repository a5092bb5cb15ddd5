"""`ScriptedModelServer`: a real OpenAI-compatible HTTP/1.1 server on loopback, run by a script."""

from __future__ import annotations

import contextlib
import http
import json
import re
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc
import anyio.from_thread
from anyio.streams.buffered import BufferedByteReceiveStream

from moot.runtime import LifecycleError

from ._script import RecordedRequest, Reply, Responder, Rule, resolve, tool_call_dicts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from types import TracebackType

_TOKEN_RE = re.compile(r"\s*\S+|\s+")
_CLOSED = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.IncompleteRead,
    anyio.DelimiterNotFound,
    ConnectionError,
)


def _words(text: str) -> int:
    return len(text.split())


class ScriptedModelServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1 for tests, ours and users'.

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
        self._script: deque[Responder] = deque(script)
        self.rules = list(rules)
        self.default = default
        self.models = tuple(models)
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._changed: anyio.Event | None = None
        self._port: int | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listener: anyio.abc.Listener[anyio.abc.SocketStream] | None = None
        self._portal: contextlib.ExitStack | None = None

    # -- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise LifecycleError(
                "Cannot read the address of a ScriptedModelServer that is not running;"
                " use it as `async with` or `with`."
            )
        return self._port

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:PORT`, e.g. the endpoint of an Azure-style config."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, the OpenAI-style base URL."""
        return f"{self.root_url}/v1"

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

    # -- waiting (async mode) --------------------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[ScriptedModelServer], bool]) -> None:
        """Wait until `predicate(server)` holds; re-checked whenever a request starts or ends."""
        while not predicate(self):
            if self._changed is None:
                raise LifecycleError(
                    "Cannot wait on a ScriptedModelServer that is not running in this event loop."
                )
            await self._changed.wait()

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self._listener = listener
        self._port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self._changed = anyio.Event()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(listener.serve, self._serve_connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task_group is None or self._listener is None:
            return
        self._task_group.cancel_scope.cancel()
        try:
            await self._task_group.__aexit__(None, None, None)
        finally:
            await self._listener.aclose()
            self._task_group = None
            self._listener = None
            self._changed = None
            self._port = None

    def __enter__(self) -> Self:
        stack = contextlib.ExitStack()
        try:
            portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
            stack.enter_context(portal.wrap_async_context_manager(self))
        except BaseException:
            stack.close()
            raise
        self._portal = stack
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._portal = self._portal, None
        if stack is not None:
            stack.close()

    # -- HTTP ------------------------------------------------------------------------------------

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            with contextlib.suppress(*_CLOSED):
                while True:
                    head = await reader.receive_until(b"\r\n\r\n", 65536)
                    request_line, *lines = head.decode("latin-1").split("\r\n")
                    method, target, _ = request_line.split(" ", 2)
                    headers = {}
                    for line in lines:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    length = int(headers.get("content-length", "0"))
                    raw = await reader.receive_exactly(length) if length else b""
                    keep_alive = await self._respond(stream, reader, method, target, headers, raw)
                    if not keep_alive or headers.get("connection", "").lower() == "close":
                        return

    async def _respond(
        self,
        stream: anyio.abc.SocketStream,
        reader: BufferedByteReceiveStream,
        method: str,
        target: str,
        headers: dict[str, str],
        raw: bytes,
    ) -> bool:
        path = target.split("?", 1)[0]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            request = RecordedRequest(method, target, headers, body, index=len(self.requests))
            self.requests.append(request)
        self._notify()
        if method == "GET" and path.endswith("/models"):
            data = [{"id": name, "object": "model", "owned_by": "moot"} for name in self.models]
            await _send_json(stream, 200, {"object": "list", "data": data})
            return True
        if method != "POST" or not path.endswith("/chat/completions"):
            await _send_error(stream, 404, f"ScriptedModelServer has no route {method} {path}")
            return True
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            await _send_error(stream, 400, "the request body must be JSON with a 'messages' list")
            return True
        try:
            reply = self._pick(request)
        except Exception as exc:  # a test's responder failed: answer loudly, keep serving
            problem = (
                f"ScriptedModelServer: the responder for request #{request.index} raised {exc!r}"
            )
            self.errors.append(problem)
            await _send_error(stream, 500, problem)
            return True
        if reply is None:
            problem = (
                f"ScriptedModelServer: the script has no reply left for request #{request.index}"
                f" (last message: {request.last_text[:80]!r})"
            )
            self.errors.append(problem)
            await _send_error(stream, 500, problem)
            return True
        try:
            return await self._answer(stream, reader, request, reply)
        except _CLOSED:
            self.disconnects += 1
            self._notify()
            raise

    async def _answer(
        self,
        stream: anyio.abc.SocketStream,
        reader: BufferedByteReceiveStream,
        request: RecordedRequest,
        reply: Reply,
    ) -> bool:
        if reply.latency:
            await anyio.sleep(reply.latency)
        if reply.hang:
            await reader.receive()  # returns only if the client sends more; EOF raises
            return False
        extra = dict(reply.headers)
        if reply.retry_after is not None:
            extra["retry-after"] = f"{reply.retry_after:g}"
        if reply.status >= 400:
            text = reply.error or http.HTTPStatus(reply.status).phrase
            await _send_error(stream, reply.status, text, extra, code=reply.error_code)
            return True
        if reply.malformed:
            await _send_raw(stream, 200, b'{"id": "broken", "choices": [', extra)
            return True
        number = request.index
        model = reply.model or str(request.body.get("model") or "scripted")
        calls = tool_call_dicts(reply, number)
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        prompt = sum(_words(str(m.get("content") or "")) for m in request.messages)
        completion = _words(reply.content or "") + sum(
            _words(c["function"]["arguments"]) for c in calls
        )
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        usage.update(reply.usage or {})
        usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
        base = {"id": f"chatcmpl-scripted-{number}", "created": int(time.time()), "model": model}
        if request.stream:
            options = request.body.get("stream_options") or {}
            chunks = _stream_chunks(base, reply.content, calls, finish)
            if options.get("include_usage"):
                chunks.append(
                    {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                )
            return await _send_stream(stream, chunks, extra, cut=reply.cut_stream)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if calls:
            message["tool_calls"] = calls
        payload = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        if reply.cut_stream:
            data = json.dumps(payload).encode()
            head = _head(200, {"content-type": "application/json", **extra}, len(data))
            await stream.send(head + data[: len(data) // 2])
            return False
        await _send_json(stream, 200, payload, extra)
        return True


def _head(status: int, headers: dict[str, str], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is None:
        lines.append("transfer-encoding: chunked")
    else:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send_raw(
    stream: anyio.abc.SocketStream, status: int, data: bytes, extra: dict[str, str] | None = None
) -> None:
    headers = {"content-type": "application/json", **(extra or {})}
    await stream.send(_head(status, headers, len(data)) + data)


async def _send_json(
    stream: anyio.abc.SocketStream, status: int, payload: Any, extra: dict[str, str] | None = None
) -> None:
    await _send_raw(stream, status, json.dumps(payload).encode(), extra)


async def _send_error(
    stream: anyio.abc.SocketStream,
    status: int,
    message: str,
    extra: dict[str, str] | None = None,
    *,
    code: str | None = None,
) -> None:
    kind = code or ("rate_limit_exceeded" if status == 429 else "scripted_error")
    error = {"error": {"message": message, "type": kind, "code": kind}}
    await _send_json(stream, status, error, extra)


def _stream_chunks(
    base: dict[str, Any], content: str | None, calls: list[dict[str, Any]], finish: str
) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in _TOKEN_RE.findall(content or "")]
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


def _events(chunks: list[dict[str, Any]]) -> Iterator[bytes]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


async def _send_stream(
    stream: anyio.abc.SocketStream,
    chunks: list[dict[str, Any]],
    extra: dict[str, str],
    *,
    cut: bool,
) -> bool:
    headers = {"content-type": "text/event-stream", "cache-control": "no-cache", **extra}
    events = list(_events(chunks))
    if cut:
        events = events[: max(2, len(events) // 2)]
    await stream.send(_head(200, headers, None))
    for event in events:
        await stream.send(b"%x\r\n%s\r\n" % (len(event), event))
    if cut:
        return False  # close without the final empty chunk: the client sees a broken stream
    await stream.send(b"0\r\n\r\n")
    return True
