"""MCP servers as tools: `McpServer(command=[...])` runs a server over stdio, `McpServer(url=...)`
reaches one over streamable HTTP; its tools become `Tool`s whose JSON schemas reach the model as
the server wrote them. Built on the official `mcp` SDK (2.x), imported only when a server is made.

A server holds at most one session, shared by every chat that calls its tools, with a bound on
the calls in flight. The session lives while someone holds the server: an `async with` block, or
the resource holder of an agent that runs its tools (until the runtime stops); a call made with no
holder opens a session for itself and closes it after. The session is entered and left in a
keeper task of its own, since the SDK's transports hold task-bound cancel scopes while chats call
from many tasks. A call that loses the connection retires the session; the next call reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pydantic
import structlog

from moot.models import InvalidJSONError, JSONDepthError, loads_bounded

from ._errors import (
    McpCallError,
    McpConfigError,
    McpConnectionError,
    McpNotInstalledError,
    McpServerDiedError,
    McpTimeoutError,
)
from ._tools import MAX_ARGUMENT_CHARS, MAX_ARGUMENT_DEPTH, Tool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    import httpx2
    import mcp

    from ._conversable import ConversableAgent

log = structlog.get_logger("moot.agents.mcp")

DEFAULT_CALL_TIMEOUT = 60.0  # seconds one tool call may take on the server
DEFAULT_CONNECT_TIMEOUT = 30.0  # seconds to start or reach the server and finish the handshake
DEFAULT_MAX_CONCURRENT_CALLS = 16  # calls in flight on one session; more wait for a slot
MAX_RESULT_CHARS = 200_000  # a result's text past this is cut, with a note saying so
_MAX_LIST_PAGES = 100  # tools/list pages read before giving up on a paginator that never ends
_CONNECTION_CLOSED = -32000  # the SDK's JSON-RPC code for a connection that ended
_REQUEST_TIMEOUT = -32001
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")


def _require_sdk() -> None:
    """Import the `mcp` SDK now, or raise a typed error saying how to install it."""
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise McpNotInstalledError(
            "MCP servers need the official `mcp` SDK: pip install 'moot[mcp]'"
        ) from exc


def _client_info() -> mcp.Implementation:
    import mcp

    return mcp.Implementation(name="moot", version="0.1.0")


@dataclass(frozen=True, slots=True, kw_only=True)
class McpStatistics:
    """What a server has done: sessions opened, calls made, calls in flight now and at most."""

    sessions_opened: int
    calls: int
    calls_in_flight: int
    peak_calls_in_flight: int
    holders: int
    connected: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class McpResult:
    """A tool's answer as text for the model; `is_error` when the tool reported a failure."""

    text: str
    is_error: bool
    structured: Any = None


@dataclass(slots=True, eq=False)
class _Session:
    """One live SDK client, entered and left in `task`; `closing` asks the task to leave."""

    client: Any
    task: asyncio.Task[None]
    closing: asyncio.Event


@dataclass(slots=True, eq=False)
class _LoopState:
    """What belongs to one event loop: the session, its opening, the call slots, the holders."""

    loop: asyncio.AbstractEventLoop
    slots: asyncio.Semaphore
    holders: int = 0
    session: _Session | None = None
    opening: asyncio.Future[_Session] | None = None
    retired: set[asyncio.Task[None]] = field(default_factory=set)


class McpServer:
    """An MCP server whose tools an agent's model may call.

    Give exactly one of `command` (the server runs as a subprocess and speaks over its stdin and
    stdout; it gets `env` merged over a minimal environment, not yours) or `url` (streamable
    HTTP; pass `http_client`, an `httpx2.AsyncClient` as the SDK takes it, or `headers`).

    Raises:
        McpNotInstalledError: the `mcp` SDK is not installed.
        McpConfigError: neither or both of `command` and `url`, or a limit below its minimum.
    """

    def __init__(
        self,
        *,
        command: Sequence[str] | None = None,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx2.AsyncClient | None = None,
        name: str | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
    ) -> None:
        _require_sdk()
        if (command is None) == (url is None):
            raise McpConfigError("an McpServer needs exactly one of command=[...] or url=...")
        if command is not None and (isinstance(command, str) or not command):
            raise McpConfigError(
                "command must be a non-empty list of arguments, e.g. ['python', 'server.py']",
                setting="command",
            )
        if url is not None and not url.startswith(("http://", "https://")):
            raise McpConfigError(f"url must be an http(s) URL; got {url!r}", setting="url")
        if command is not None and (headers is not None or http_client is not None):
            raise McpConfigError("headers and http_client apply to url= servers only")
        for setting, value in (
            ("call_timeout", call_timeout),
            ("connect_timeout", connect_timeout),
        ):
            if not value > 0:
                raise McpConfigError(f"{setting} must be positive; got {value}", setting=setting)
        if max_concurrent_calls < 1:
            raise McpConfigError(
                f"max_concurrent_calls must be at least 1; got {max_concurrent_calls}",
                setting="max_concurrent_calls",
            )
        self.command = tuple(command) if command is not None else None
        self.url = url
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.headers = dict(headers) if headers is not None else None
        self.http_client = http_client
        self.name = name or url or " ".join(os.path.basename(part) for part in command or ())
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self.max_concurrent_calls = max_concurrent_calls
        self._state: _LoopState | None = None
        self._sessions_opened = 0
        self._calls = 0
        self._in_flight = 0
        self._peak = 0

    def __repr__(self) -> str:
        return f"McpServer(name={self.name!r})"

    # ------------------------------------------------------------------ holding

    async def __aenter__(self) -> McpServer:
        """Hold the server and connect now, so a server that cannot start fails here."""
        self.hold()
        try:
            await self._session()
        except BaseException:
            await self.release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    def hold(self) -> None:
        """Keep the session open (once made) until `release()`; an agent's resource holder and
        `async with` hold it."""
        self._loop_state().holders += 1

    async def release(self) -> None:
        """Drop one hold; the last one closes the session."""
        state = self._loop_state()
        state.holders -= 1
        if state.holders <= 0:
            state.holders = 0
            await self._close(state)

    async def aclose(self) -> None:
        """Close the session now, whoever holds it; a later call opens a new one."""
        await self._close(self._loop_state())

    def statistics(self) -> McpStatistics:
        state = self._state
        return McpStatistics(
            sessions_opened=self._sessions_opened,
            calls=self._calls,
            calls_in_flight=self._in_flight,
            peak_calls_in_flight=self._peak,
            holders=state.holders if state is not None else 0,
            connected=state is not None and state.session is not None,
        )

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[_LoopState]:
        state = self._loop_state()
        state.holders += 1
        try:
            yield state
        finally:
            await self.release()

    def _loop_state(self) -> _LoopState:
        """This loop's state; a loop that ended took its session with it (its keeper task was
        cancelled when the loop shut down), so a new loop starts afresh."""
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:
            state = self._state = _LoopState(
                loop=loop, slots=asyncio.Semaphore(self.max_concurrent_calls)
            )
        return state

    # ------------------------------------------------------------------ the session

    async def _session(self) -> _Session:
        """The open session, or a new one; concurrent callers share one opening."""
        state = self._loop_state()
        while True:
            if state.session is not None:
                return state.session
            opening = state.opening
            if opening is None:
                return await self._open(state)
            try:
                return await asyncio.shield(opening)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if opening.cancelled() and (task is None or not task.cancelling()):
                    continue  # the opener gave up, not us: open it ourselves
                raise

    async def _open(self, state: _LoopState) -> _Session:
        opening: asyncio.Future[_Session] = state.loop.create_future()
        state.opening = opening
        try:
            session = await self._start_keeper()
        except asyncio.CancelledError:
            state.opening = None
            opening.cancel()
            raise
        except BaseException as exc:
            state.opening = None
            opening.set_exception(exc)
            opening.exception()  # retrieved here: each waiter raises it itself
            raise
        state.opening = None
        state.session = session
        self._sessions_opened += 1
        opening.set_result(session)
        log.info("mcp.session_opened", server=self.name)
        return session

    async def _start_keeper(self) -> _Session:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Any] = loop.create_future()
        closing = asyncio.Event()
        task = loop.create_task(self._keep(ready, closing), name=f"mcp-session {self.name}")
        try:
            async with asyncio.timeout(self.connect_timeout) as deadline:
                client = await asyncio.shield(ready)
        except BaseException:
            closing.set()
            if not ready.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if ready.done() and not ready.cancelled():
                ready.exception()
            if deadline.expired():
                raise McpTimeoutError(
                    f"MCP server {self.name!r} did not connect within {self.connect_timeout} s"
                ) from None
            raise
        return _Session(client=client, task=task, closing=closing)

    async def _keep(self, ready: asyncio.Future[Any], closing: asyncio.Event) -> None:
        """Enter the SDK client, hand it over, and leave it in this same task when asked."""
        try:
            async with self._client() as client:
                ready.set_result(client)
                await closing.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:
            if not ready.done():
                ready.set_exception(_connection_error(self.name, exc))
            else:
                log.warning("mcp.session_close_failed", server=self.name, error=repr(exc))

    def _client(self) -> AbstractAsyncContextManager[mcp.Client]:
        import mcp

        if self.command is None:
            return self._http_client()
        program, *args = self.command
        target = mcp.StdioServerParameters(command=program, args=args, env=self.env, cwd=self.cwd)
        return mcp.Client(target, cache=None, client_info=_client_info())

    @contextlib.asynccontextmanager
    async def _http_client(self) -> AsyncIterator[mcp.Client]:
        import httpx2
        import mcp
        from mcp.client.streamable_http import streamable_http_client

        assert self.url is not None
        async with contextlib.AsyncExitStack() as stack:
            http = self.http_client
            if http is None:
                timeout = httpx2.Timeout(30.0, read=max(300.0, self.call_timeout + 30.0))
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(headers=self.headers, timeout=timeout)
                )
            transport = streamable_http_client(self.url, http_client=http)
            client = mcp.Client(transport, cache=None, client_info=_client_info())
            yield await stack.enter_async_context(client)

    async def _retire(self, state: _LoopState, session: _Session) -> None:
        """Stop using `session` (its connection is gone) and close it; the next call opens anew."""
        if state.session is session:
            state.session = None
            log.warning("mcp.session_lost", server=self.name)
        await self._finish(state, session)

    async def _close(self, state: _LoopState) -> None:
        session, state.session = state.session, None
        if session is not None:
            log.info("mcp.session_closed", server=self.name)
            await self._finish(state, session)
        closing = list(state.retired)  # sessions retired by failed calls, still closing
        await asyncio.shield(asyncio.gather(*closing, return_exceptions=True))

    async def _finish(self, state: _LoopState, session: _Session) -> None:
        session.closing.set()
        state.retired.add(session.task)
        session.task.add_done_callback(state.retired.discard)
        await asyncio.shield(asyncio.gather(session.task, return_exceptions=True))

    # ------------------------------------------------------------------ requests

    async def list_tools(self) -> list[McpTool]:
        """The server's tools, as moot tools for `register_for_llm` / `register_for_execution`.

        Raises:
            McpConnectionError: the server cannot be started or reached.
            McpTimeoutError: no listing within `call_timeout`.
            McpCallError: the server refused the listing.
        """
        listed: list[Any] = []
        async with self._held() as state:
            session = await self._session()
            cursor: str | None = None
            for _ in range(_MAX_LIST_PAGES):
                send = functools.partial(session.client.list_tools, cursor=cursor)
                page = await self._request(state, session, "tools/list", send)
                listed.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
        return _tools_of(self, listed)

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> McpResult:
        """Call tool `name` (its MCP name) with `arguments`; a tool that reports a failure
        (`isError`) gives a result with `is_error`, not an exception.

        Waits for one of `max_concurrent_calls` slots; the call itself is bounded by `timeout`
        (default `call_timeout`) and is cancelled on the server (the SDK tells it) when the
        caller is cancelled or the time runs out.

        Raises:
            McpConnectionError: the server cannot be started or reached.
            McpServerDiedError: the connection ended during the call (the next call reconnects).
            McpTimeoutError: no answer within `call_timeout`.
            McpCallError: the server answered a protocol error (e.g. no such tool).
        """
        payload = dict(arguments or {})
        async with self._held() as state, state.slots:
            session = await self._session()
            self._calls += 1
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            try:
                send = functools.partial(session.client.call_tool, name, payload)
                result = await self._request(state, session, name, send, timeout)
            finally:
                self._in_flight -= 1
        return _result_of(result)

    async def _request(
        self,
        state: _LoopState,
        session: _Session,
        what: str,
        send: Callable[[], Awaitable[Any]],
        timeout: float | None = None,
    ) -> Any:
        """Send one request within `timeout` (default `call_timeout`), mapping the SDK's
        failures to ours."""
        from mcp import MCPError

        limit = self.call_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit) as deadline:
                return await send()
        except TimeoutError:
            if not deadline.expired():
                raise
            raise McpTimeoutError(
                f"MCP server {self.name!r} did not answer {what!r} within {limit} s;"
                " the request was cancelled"
            ) from None
        except MCPError as exc:
            if exc.code == _CONNECTION_CLOSED:
                await self._retire(state, session)
                raise McpServerDiedError(
                    f"the connection to MCP server {self.name!r} ended during {what!r}"
                ) from exc
            if exc.code == _REQUEST_TIMEOUT:
                raise McpTimeoutError(f"MCP server {self.name!r}: {exc.message}") from exc
            raise McpCallError(f"MCP server {self.name!r} refused {what!r}: {exc.message}") from exc
        except (OSError, EOFError) as exc:
            await self._retire(state, session)
            raise McpServerDiedError(
                f"the connection to MCP server {self.name!r} failed during {what!r}: {exc!r}"
            ) from exc

    async def register(
        self, *, caller: ConversableAgent, executor: ConversableAgent
    ) -> list[McpTool]:
        """List the tools and offer each to `caller`'s model, run by `executor` (one agent may
        be both); returns the tools.

        Raises:
            ToolRegistrationError: `caller` has no model.
            McpConnectionError: the server cannot be started or reached.
        """
        tools = await self.list_tools()
        for tool in tools:
            caller.register_for_llm()(tool)
            executor.register_for_execution()(tool)
        return tools


class _AnyArguments(pydantic.BaseModel):
    """Arguments pass through unchecked: the server validates them against its own schema."""

    model_config = pydantic.ConfigDict(extra="allow")


@dataclass(frozen=True, slots=True)
class _McpCall:
    """`McpTool.function`: call the tool with keyword arguments; its text, or an error."""

    server: McpServer
    mcp_name: str

    async def __call__(self, **arguments: Any) -> str:
        result = await self.server.call_tool(self.mcp_name, arguments)
        if result.is_error:
            raise McpCallError(result.text)
        return result.text


class McpTool(Tool):
    """A tool of an MCP server: its schema goes to the model as the server listed it, and a
    call goes to the server, its failures coming back as an "Error: ..." text.

    Calling it (`await tool(path="a.txt")`, or its `func`) returns the text and raises
    `McpError` when the call fails or the tool reports an error.
    """

    __slots__ = ("input_schema", "mcp_name", "server")

    def __init__(
        self,
        *,
        server: McpServer,
        mcp_name: str,
        name: str,
        description: str,
        input_schema: Mapping[str, Any],
    ) -> None:
        # `Tool.__init__` reads a Python signature; an MCP tool brings a JSON schema instead.
        self.name = name
        self.description = description
        self.func = _McpCall(server, mcp_name)
        self.arguments = _AnyArguments
        self._schema = None
        self.server = server
        self.mcp_name = mcp_name
        self.input_schema: Mapping[str, Any] = input_schema

    def __repr__(self) -> str:
        return f"McpTool(name={self.name!r}, mcp_name={self.mcp_name!r}, server={self.server!r})"

    def renamed(self, name: str | None = None, description: str | None = None) -> McpTool:
        """This tool under another name or description (what `register_function` asks for)."""
        if (name is None or name == self.name) and (
            not description or description == self.description
        ):
            return self
        return McpTool(
            server=self.server,
            mcp_name=self.mcp_name,
            name=name or self.name,
            description=description or self.description,
            input_schema=self.input_schema,
        )

    @property
    def function_schema(self) -> dict[str, Any]:
        """Name, description and the server's input schema, unchanged, as `parameters`."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": copy.deepcopy(dict(self.input_schema)),
        }

    async def run(self, arguments: str | Mapping[str, Any] | Any) -> tuple[bool, str]:
        """Call the server with `arguments` (JSON text or a mapping); whether it succeeded and
        the text for the model. Never raises for the model's or the server's failures."""
        parsed = _parse_arguments(self.name, arguments)
        if isinstance(parsed, str):
            return False, parsed
        try:
            result = await self.server.call_tool(self.mcp_name, parsed)
        except (McpConnectionError, McpTimeoutError, McpCallError) as exc:
            return False, f"Error: {type(exc).__name__}: {exc}"
        if result.is_error:
            return False, f"Error: {result.text or 'the tool failed and gave no reason'}"
        return True, result.text


def mcp_servers(tools: Iterable[Any]) -> tuple[McpServer, ...]:
    """The MCP servers behind `tools`, once each: what an agent's resource holder keeps open."""
    found: dict[int, McpServer] = {}
    for tool in tools:
        if isinstance(tool, McpTool):
            found.setdefault(id(tool.server), tool.server)
    return tuple(found.values())


def _tools_of(server: McpServer, listed: Iterable[Any]) -> list[McpTool]:
    tools: list[McpTool] = []
    for entry in listed:
        mcp_name = str(entry.name)
        name = _TOOL_NAME.sub("_", mcp_name)[:64] or "tool"
        description = entry.description or getattr(entry, "title", None) or mcp_name
        tools.append(
            McpTool(
                server=server,
                mcp_name=mcp_name,
                name=name,
                description=description,
                input_schema=dict(entry.input_schema),
            )
        )
    return tools


def _parse_arguments(name: str, arguments: Any) -> dict[str, Any] | str:
    """The arguments as a dict, or the "Error: ..." text for the model."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str):
        return f"Error: the arguments for {name} must be a JSON object"
    if len(arguments) > MAX_ARGUMENT_CHARS:
        return (
            f"Error: the arguments for {name} are {len(arguments)} characters long,"
            f" over the limit of {MAX_ARGUMENT_CHARS}"
        )
    try:
        parsed = loads_bounded(arguments, max_depth=MAX_ARGUMENT_DEPTH) if arguments.strip() else {}
    except JSONDepthError:
        return f"Error: the arguments for {name} nest deeper than {MAX_ARGUMENT_DEPTH} levels"
    except InvalidJSONError as exc:
        return f"Error: the arguments for {name} are not valid JSON: {exc}"
    if not isinstance(parsed, dict):
        return f"Error: the arguments for {name} must be a JSON object"
    return parsed


def _result_of(result: Any) -> McpResult:
    """A `CallToolResult` as text: text blocks as they are, other blocks named, and the
    structured content as JSON when there is no block at all."""
    parts = [_block_text(block) for block in result.content]
    structured = result.structured_content
    if not parts and structured is not None:
        parts.append(json.dumps(structured, default=str))
    text = "\n".join(parts)
    if len(text) > MAX_RESULT_CHARS:
        cut = len(text) - MAX_RESULT_CHARS
        text = f"{text[:MAX_RESULT_CHARS]}\n[... {cut} more characters cut by moot]"
    return McpResult(text=text, is_error=bool(result.is_error), structured=structured)


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind == "resource":
        inner = block.resource
        text = getattr(inner, "text", None)
        return str(text) if text is not None else f"[binary resource {inner.uri}]"
    if kind in ("image", "audio"):
        return f"[{kind} {block.mime_type}, {len(block.data)} base64 characters]"
    if kind == "resource_link":
        return f"[resource {block.uri}]"
    return json.dumps(block.model_dump(mode="json", by_alias=True, exclude_none=True))


def _connection_error(name: str, exc: BaseException) -> McpConnectionError:
    """An opening failure (spawn, connect, handshake), as one typed error."""
    if isinstance(exc, McpConnectionError):
        return exc
    leaves = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    reasons = "; ".join(repr(leaf) for leaf in leaves)
    error = McpConnectionError(f"MCP server {name!r} could not be started or reached: {reasons}")
    error.__cause__ = exc
    return error
