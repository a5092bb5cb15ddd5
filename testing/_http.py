"""The one small HTTP/1.1 server moot ships: loopback only, keep-alive, chunked streaming.

`LoopbackHTTPServer` owns the listener, the connections and the request parsing; a subclass
answers each request in `handle(exchange)`. `ScriptedModelServer` (tests) and
`ModelClientServer` (`moot model serve`) are the two subclasses.
"""

from __future__ import annotations

import abc
import contextlib
import http
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import structlog
from anyio.streams.buffered import BufferedByteReceiveStream

from moot.runtime import LifecycleError

log = structlog.get_logger("moot.testing.http")

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

CLOSED = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.IncompleteRead,
    anyio.DelimiterNotFound,
    ConnectionError,
)
"""What a peer that went away raises while we read or write."""

MAX_HEAD = 64 << 10
DEFAULT_MAX_BODY = 16 << 20


def head(status: int, headers: dict[str, str], length: int | None) -> bytes:
    """A response head; `length=None` announces a chunked body."""
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is None:
        lines.append("transfer-encoding: chunked")
    else:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(slots=True)
class Exchange:
    """One request on a connection and the ways to answer it."""

    stream: anyio.abc.SocketStream
    reader: BufferedByteReceiveStream
    method: str
    target: str
    headers: dict[str, str]
    raw: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    async def send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        """A whole response with a content length."""
        extra = {"content-type": "application/json", **(headers or {})}
        await self.stream.send(head(status, extra, len(data)) + data)

    async def send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        await self.send(status, json.dumps(payload).encode(), headers)

    async def send_error(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        """An OpenAI-style `{"error": {...}}` answer."""
        kind = code or ("rate_limit_exceeded" if status == 429 else "invalid_request_error")
        error = {"error": {"message": message, "type": kind, "code": kind}}
        await self.send_json(status, error, headers)

    async def start_chunks(self, headers: dict[str, str]) -> None:
        """Begin a chunked 200 answer (server-sent events when `headers` say so)."""
        await self.stream.send(head(200, headers, None))

    async def send_chunk(self, data: bytes) -> None:
        if data:
            await self.stream.send(b"%x\r\n%s\r\n" % (len(data), data))

    async def end_chunks(self) -> None:
        await self.stream.send(b"0\r\n\r\n")

    async def wait_for_disconnect(self) -> None:
        """Return when the client sends more or goes away (EOF raises one of `CLOSED`)."""
        await self.reader.receive()


class LoopbackHTTPServer(abc.ABC):
    """An HTTP/1.1 server on 127.0.0.1 (`port=0` picks a free port).

    Use `async with` in one task, or plain `with` to run it on a background thread. A request
    body over `max_body` bytes is refused with 413. `open_connections` counts the clients
    connected now (`wait_for` sees it change).
    """

    def __init__(self, *, port: int = 0, max_body: int = DEFAULT_MAX_BODY) -> None:
        self._wanted_port = port
        self.max_body = max_body
        self._changed: anyio.Event | None = None
        self._port: int | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listener: anyio.abc.Listener[anyio.abc.SocketStream] | None = None
        self._portal: contextlib.ExitStack | None = None
        self.open_connections = 0
        self._loop: object | None = None

    @abc.abstractmethod
    async def handle(self, exchange: Exchange) -> bool:
        """Answer one request; return False to close the connection afterwards."""

    # -- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise LifecycleError(
                f"Cannot read the address of a {type(self).__name__} that is not running;"
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

    # -- waiting (async mode) --------------------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[Self], bool]) -> None:
        """Wait until `predicate(server)` holds; re-checked whenever a request starts or ends."""
        while not predicate(self):
            if self._changed is None or self._loop is not _running_loop():
                raise LifecycleError(
                    f"Cannot wait on a {type(self).__name__} that is not running in this event"
                    " loop."
                )
            await self._changed.wait()

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        listener = await anyio.create_tcp_listener(
            local_host="127.0.0.1", local_port=self._wanted_port
        )
        self._listener = listener
        self._port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self._changed = anyio.Event()
        self._loop = _running_loop()
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

    # -- connections -----------------------------------------------------------------------------

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        self.open_connections += 1
        try:
            await self._converse(stream)
        finally:
            self.open_connections -= 1
            self._notify()

    async def _converse(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            with contextlib.suppress(*CLOSED):
                while True:
                    exchange = await self._read(stream, reader)
                    if exchange is None:
                        return
                    try:
                        keep_alive = await self.handle(exchange)
                    except CLOSED:
                        raise
                    except Exception as exc:  # a handler bug: answer 500, keep the server up
                        log.exception("http.handler_failed", path=exchange.path)
                        await exchange.send_error(500, f"{type(exc).__name__}: {exc}")
                        return
                    if not keep_alive or exchange.headers.get("connection", "").lower() == "close":
                        return

    async def _read(
        self, stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream
    ) -> Exchange | None:
        raw_head = await reader.receive_until(b"\r\n\r\n", MAX_HEAD)
        request_line, *lines = raw_head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        exchange = Exchange(stream, reader, method, target, headers, b"")
        declared = headers.get("content-length", "0")
        length = int(declared) if declared.isdigit() else -1
        if length < 0 or length > self.max_body:
            await exchange.send_error(413, f"a request body may have at most {self.max_body} bytes")
            return None
        exchange.raw = await reader.receive_exactly(length) if length else b""
        return exchange


def _running_loop() -> object:
    return anyio.lowlevel.current_token().native_token
