"""A real MCP server for the MCP tests, written with the official SDK.

Run it as `python mcp_fixture.py stdio`, or `python mcp_fixture.py http FD` to serve streamable
HTTP under uvicorn on the listening socket FD (the test binds 127.0.0.1 and keeps the socket, so
a restarted server listens on the same port). With MOOT_MCP_FIXTURE_LOG set, each start appends
its pid to that file, so a test can count the processes (the sessions, over stdio).

Its tools record what happened on the server side, and the waiting ones let a test wait for an
event instead of sleeping: `started(n)` returns once n `hang` calls have begun, `cancellations(n)`
once n were cancelled.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Annotated

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

server = MCPServer("moot-fixture", log_level="WARNING")


class _Counter:
    """A count that tasks can wait on."""

    def __init__(self) -> None:
        self.value = 0
        self._changed = anyio.Event()

    def add(self) -> None:
        self.value += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def reach(self, target: int) -> int:
        while self.value < target:
            await self._changed.wait()
        return self.value


started = _Counter()
cancelled = _Counter()
crowd_state = {"active": 0, "peak": 0, "arrived": 0}
crowd_gates: dict[int, anyio.Event] = {}


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def search(
    query: Annotated[str, Field(description="What to look for.")],
    limit: Annotated[int, Field(ge=1, le=50)] = 10,
    tags: list[str] | None = None,
) -> str:
    """Search the fixture's catalogue (a tool with a richer schema)."""
    return f"{limit} results for {query!r} tagged {sorted(tags or [])}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with `reason` as the error text."""
    raise ToolError(reason)


@server.tool()
async def hang() -> str:
    """Never answers; counts its start and its cancellation."""
    started.add()
    try:
        await anyio.sleep_forever()
    except anyio.get_cancelled_exc_class():
        cancelled.add()
        raise
    return "unreachable"


@server.tool(name="started")
async def started_calls(at_least: int) -> int:
    """Wait until `at_least` hang calls have started; how many did."""
    return await started.reach(at_least)


@server.tool()
async def cancellations(at_least: int) -> int:
    """Wait until `at_least` hang calls were cancelled; how many were."""
    return await cancelled.reach(at_least)


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
async def crowd(width: int) -> int:
    """A barrier: each call waits until `width` calls are in flight together, then all go on.
    Returns the most calls ever in flight at once."""
    crowd_state["active"] += 1
    crowd_state["peak"] = max(crowd_state["peak"], crowd_state["active"])
    crowd_state["arrived"] += 1
    generation = (crowd_state["arrived"] - 1) // width
    gate = crowd_gates.setdefault(generation, anyio.Event())
    if crowd_state["arrived"] % width == 0:
        gate.set()
    await gate.wait()
    crowd_state["active"] -= 1
    return crowd_state["peak"]


def _record_start() -> None:
    path = os.environ.get("MOOT_MCP_FIXTURE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()}\n")


def _serve_http(fd: int) -> None:
    import uvicorn

    listener = socket.socket(fileno=fd)
    app = server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    anyio.run(uvicorn.Server(config).serve, [listener])


if __name__ == "__main__":
    _record_start()
    if sys.argv[1:2] == ["http"]:
        _serve_http(int(sys.argv[2]))
    else:
        server.run()
