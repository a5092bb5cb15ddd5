"""MCP servers as tools, against a real MCP server (tests/_helpers/mcp_fixture.py) run as a
subprocess over stdio and under uvicorn on 127.0.0.1 (streamable HTTP), and agents whose model is
the scripted HTTP server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import (
    AssistantAgent,
    McpCallError,
    McpConfigError,
    McpConnectionError,
    McpServer,
    McpServerDiedError,
    McpTimeoutError,
    McpTool,
    UserProxyAgent,
    register_function,
)
from moot.runtime import Runtime
from moot.testing import Reply, Rule, ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import Iterator

FIXTURE = str(Path(__file__).parents[1] / "_helpers" / "mcp_fixture.py")
GUARD = 60.0  # a bound on waits that would otherwise hang a broken test; never reached when green


class HttpFixture:
    """The fixture server under uvicorn on a socket this test owns, so a restart keeps the port."""

    def __init__(self, log: Path) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fd = self.listener.fileno()
        env = {**os.environ, "MOOT_MCP_FIXTURE_LOG": str(self.log)}
        self.process = subprocess.Popen(
            [sys.executable, FIXTURE, "http", str(fd)], pass_fds=[fd], env=env
        )

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        self.kill()
        self.listener.close()


@pytest.fixture
def fixture_log(tmp_path: Path) -> Path:
    return tmp_path / "starts.log"


@pytest.fixture
def http_fixture(fixture_log: Path) -> Iterator[HttpFixture]:
    running = HttpFixture(fixture_log)
    running.start()
    try:
        yield running
    finally:
        running.close()


def _stdio(log: Path, **options: Any) -> McpServer:
    env = {"MOOT_MCP_FIXTURE_LOG": str(log)}
    return McpServer(command=[sys.executable, FIXTURE, "stdio"], env=env, **options)


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_server(transport: str, fixture_log: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Makes an McpServer over the transport under test (starting the HTTP fixture if needed)."""
    http: HttpFixture | None = None
    if transport == "http":
        http = HttpFixture(fixture_log)
        http.start()

    def make(**options: Any) -> McpServer:
        if http is None:
            return _stdio(fixture_log, **options)
        return McpServer(url=http.url, **options)

    make.http = http  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        if http is not None:
            http.close()


def _starts(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def _pair(llm_config: dict[str, Any]) -> tuple[AssistantAgent, UserProxyAgent]:
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    return assistant, user


def _tool_messages(messages: list[dict[str, Any]]) -> list[str]:
    return [str(m["content"]) for m in messages if m.get("role") == "tool"]


# ---------------------------------------------------------------------------- listing and calls


async def test_the_tools_are_listed_with_the_servers_schemas_unchanged(make_server: Any) -> None:
    async with make_server() as server:
        tools = {tool.name: tool for tool in await server.list_tools()}

    assert {"add", "search", "fail", "hang", "pid", "crowd"} <= set(tools)
    search = tools["search"]
    assert isinstance(search, McpTool)
    assert search.description == "Search the fixture's catalogue (a tool with a richer schema)."
    parameters = search.schema()["function"]["parameters"]
    assert parameters == dict(search.input_schema)
    # What the SDK's pydantic wrote, kept: titles, bounds, defaults, descriptions, required.
    assert parameters["properties"]["limit"] == {
        "default": 10,
        "maximum": 50,
        "minimum": 1,
        "title": "Limit",
        "type": "integer",
    }
    assert parameters["properties"]["query"]["description"] == "What to look for."
    assert parameters["required"] == ["query"]
    assert search.tool_schema == {
        "type": "function",
        "function": {"name": "search", "description": search.description, "parameters": parameters},
    }


async def test_a_call_returns_the_tools_text(make_server: Any) -> None:
    async with make_server() as server:
        tools = {tool.name: tool for tool in await server.list_tools()}
        direct = await server.call_tool("add", {"a": 2, "b": 40})
        through_tool = await tools["search"].call('{"query": "moot", "tags": ["b", "a"]}')
        from_func = await tools["add"].func(a=1, b=1)
        called = await tools["add"](a=2, b=2)

    assert (direct.text, direct.is_error, direct.structured) == ("42", False, {"result": 42})
    assert through_tool == "10 results for 'moot' tagged ['a', 'b']"
    assert from_func == "2"
    assert called == "4"


async def test_a_tool_error_is_an_error_result_not_an_exception(make_server: Any) -> None:
    async with make_server() as server:
        tools = {tool.name: tool for tool in await server.list_tools()}
        result = await server.call_tool("fail", {"reason": "the disk is full"})
        ok, text = await tools["fail"].run({"reason": "the disk is full"})
        bad_arguments = await tools["add"].call('{"a": "x"}')
        not_json = await tools["add"].call("{not json")
        with pytest.raises(McpCallError, match="the disk is full"):
            await tools["fail"].func(reason="the disk is full")

    # The SDK's server prefixes the tool's own words; the model gets them behind "Error: ".
    assert (result.text, result.is_error) == ("Error executing tool fail: the disk is full", True)
    assert (ok, text) == (False, "Error: Error executing tool fail: the disk is full")
    assert bad_arguments.startswith("Error: ")
    assert "validation error" in bad_arguments
    assert not_json.startswith("Error: the arguments for add are not valid JSON")


async def test_an_unknown_tool_is_an_error_result(make_server: Any) -> None:
    async with make_server() as server:
        result = await server.call_tool("no_such_tool", {})

    assert (result.text, result.is_error) == ("Unknown tool: no_such_tool", True)


# ---------------------------------------------------------------------------- agents


async def test_a_two_agent_chat_calls_an_mcp_tool_and_the_model_sees_its_result(
    make_server: Any, server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push(
        Reply(tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "c1"}]),
        Reply(tool_calls=[{"name": "fail", "arguments": {"reason": "no such row"}, "id": "c2"}]),
        "The sum is 5. TERMINATE",
    )
    assistant, user = _pair(llm_config)
    mcp = make_server()
    tools = await mcp.register(caller=assistant, executor=user)

    result = await user.a_initiate_chat(assistant, message="add 2 and 3", silent=True)

    server.assert_script_consumed()
    first, second, third = server.requests
    offered = {tool["function"]["name"]: tool for tool in first.body["tools"]}
    assert offered["search"] == next(t for t in tools if t.name == "search").tool_schema
    assert second.messages[-1] == {"role": "tool", "tool_call_id": "c1", "content": "5"}
    assert third.messages[-1] == {
        "role": "tool",
        "tool_call_id": "c2",
        "content": "Error: Error executing tool fail: no such row",
    }
    assert result.summary == "The sum is 5."
    assert not mcp.statistics().connected  # the chat's private runtime stopped: session closed


async def test_register_function_and_the_decorators_take_mcp_tools(
    fixture_log: Path, server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push(
        Reply(tool_calls=[{"name": "plus", "arguments": {"a": 20, "b": 22}, "id": "c1"}]),
        "TERMINATE",
    )
    assistant, user = _pair(llm_config)
    async with _stdio(fixture_log) as mcp:
        tools = {tool.name: tool for tool in await mcp.list_tools()}
        register_function(
            tools["add"], caller=assistant, executor=user, name="plus", description="Add."
        )
        assistant.register_for_llm()(tools["search"])
        user.register_for_execution()(tools["search"])
        await user.a_initiate_chat(assistant, message="go", silent=True)

    offered = {tool["function"]["name"]: tool for tool in server.requests[0].body["tools"]}
    assert offered["plus"]["function"]["description"] == "Add."
    assert offered["plus"]["function"]["parameters"] == tools["add"].input_schema
    assert offered["search"] == tools["search"].tool_schema
    assert server.requests[1].messages[-1]["content"] == "42"
    assert user.can_execute_function(["plus", "search"])


async def test_a_server_killed_mid_call_is_an_error_result_then_the_next_call_reconnects(
    make_server: Any, server: ScriptedModelServer, llm_config: dict[str, Any], fixture_log: Path
) -> None:
    server.push(
        Reply(tool_calls=[{"name": "hang", "arguments": {}, "id": "c1"}]),
        Reply(tool_calls=[{"name": "add", "arguments": {"a": 1, "b": 2}, "id": "c2"}]),
        "TERMINATE",
    )
    assistant, user = _pair(llm_config)
    http = make_server.http
    async with make_server() as mcp:
        await mcp.register(caller=assistant, executor=user)
        first_pid = int((await mcp.call_tool("pid")).text)
        chat = asyncio.create_task(user.a_initiate_chat(assistant, message="go", silent=True))
        async with asyncio.timeout(GUARD):
            await mcp.call_tool("started", {"at_least": 1})
        os.kill(first_pid, signal.SIGKILL)
        if http is not None:
            http.process.wait()
            http.start()  # the same port again; the next call must reconnect to it
        async with asyncio.timeout(GUARD):
            await chat
        second_pid = int((await mcp.call_tool("pid")).text)

    died, added = _tool_messages(server.requests[2].messages)
    assert died.startswith("Error: McpServerDiedError: the connection to MCP server")
    assert added == "3"
    assert second_pid != first_pid
    assert _starts(fixture_log) == [first_pid, second_pid]
    assert mcp.statistics().sessions_opened == 2


async def test_a_direct_call_to_a_killed_server_raises_the_typed_error(fixture_log: Path) -> None:
    async with _stdio(fixture_log) as mcp:
        pid = int((await mcp.call_tool("pid")).text)
        hanging = asyncio.create_task(mcp.call_tool("hang"))
        await mcp.call_tool("started", {"at_least": 1})
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(McpServerDiedError):
            await hanging
        assert (await mcp.call_tool("add", {"a": 1, "b": 1})).text == "2"


async def test_two_hundred_chats_share_one_session_within_the_concurrency_bound(
    make_server: Any,
    transport: str,
    fixture_log: Path,
    server: ScriptedModelServer,
    llm_config: dict[str, Any],
) -> None:
    bound = 8
    server.rules.append(Rule(lambda r: r.messages[-1].get("role") == "tool", "TERMINATE"))
    server.default = Reply(tool_calls=[{"name": "crowd", "arguments": {"width": bound}}])
    assistant, user = _pair(llm_config)
    mcp = make_server(max_concurrent_calls=bound)
    await mcp.register(caller=assistant, executor=user)
    opened = mcp.statistics().sessions_opened

    async with Runtime() as runtime:
        async with asyncio.timeout(GUARD * 2):
            results = await asyncio.gather(
                *(
                    user.a_initiate_chat(
                        assistant, message=f"chat {n}", silent=True, runtime=runtime
                    )
                    for n in range(200)
                )
            )
        during = mcp.statistics()

    peaks = [int(_tool_messages(result.chat_history)[0]) for result in results]
    assert max(peaks) == bound  # the server saw exactly `bound` calls in flight, never more
    assert during.sessions_opened == opened + 1
    assert during.calls_in_flight == 0
    assert during.peak_calls_in_flight == bound
    assert during.connected  # the agent's resource holder keeps it while the runtime runs
    assert not mcp.statistics().connected  # the runtime stopped: the session closed
    if transport == "stdio":
        assert len(_starts(fixture_log)) == opened + 1  # one server process for all 200 chats
        with pytest.raises(ProcessLookupError):
            os.kill(_starts(fixture_log)[-1], 0)


async def test_cancelling_a_chat_cancels_its_call_on_the_server(
    make_server: Any, server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push(Reply(tool_calls=[{"name": "hang", "arguments": {}, "id": "c1"}]))
    assistant, user = _pair(llm_config)
    async with make_server() as mcp:
        await mcp.register(caller=assistant, executor=user)
        chat = asyncio.create_task(user.a_initiate_chat(assistant, message="go", silent=True))
        async with asyncio.timeout(GUARD):
            await mcp.call_tool("started", {"at_least": 1})
            chat.cancel()
            with pytest.raises(asyncio.CancelledError):
                await chat
            cancelled = await mcp.call_tool("cancellations", {"at_least": 1})

    assert cancelled.text == "1"


async def test_stopping_the_runtime_cancels_a_call_in_flight_and_releases_the_session(
    fixture_log: Path, server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push(Reply(tool_calls=[{"name": "hang", "arguments": {}, "id": "c1"}]))
    assistant, user = _pair(llm_config)
    async with _stdio(fixture_log) as mcp:
        await mcp.register(caller=assistant, executor=user)
        runtime = Runtime()
        await runtime.start()
        chat = asyncio.create_task(
            user.a_initiate_chat(assistant, message="go", silent=True, runtime=runtime)
        )
        async with asyncio.timeout(GUARD):
            await mcp.call_tool("started", {"at_least": 1})
            holders_while_running = mcp.statistics().holders
            await runtime.stop(timeout=0)
            await asyncio.gather(chat, return_exceptions=True)
            cancelled = await mcp.call_tool("cancellations", {"at_least": 1})
        holders_after_stop = mcp.statistics().holders

    assert cancelled.text == "1"
    assert holders_while_running == 3  # this block, the agent's holder, the call in flight
    assert holders_after_stop == 1  # this block only: the runtime's stop released the agent's


async def test_a_call_past_its_timeout_is_a_typed_error_and_is_cancelled_on_the_server(
    fixture_log: Path,
) -> None:
    async with _stdio(fixture_log) as mcp:
        hang = next(tool for tool in await mcp.list_tools() if tool.name == "hang")
        with pytest.raises(McpTimeoutError, match=r"did not answer 'hang' within 0\.2 s"):
            await mcp.call_tool("hang", timeout=0.2)
        async with asyncio.timeout(GUARD):
            assert (await mcp.call_tool("cancellations", {"at_least": 1})).text == "1"
        quick = McpServer(command=mcp.command or (), env=mcp.env, call_timeout=0.2)
        async with quick:
            slow = next(tool for tool in await quick.list_tools() if tool.name == hang.name)
            text = await slow.call("{}")
    assert text.startswith("Error: McpTimeoutError: MCP server")


# ---------------------------------------------------------------------------- lifecycle and errors


async def test_a_session_closes_with_its_async_with_block(fixture_log: Path) -> None:
    async with _stdio(fixture_log) as mcp:
        pid = int((await mcp.call_tool("pid")).text)
        assert mcp.statistics().connected
    assert not mcp.statistics().connected
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_call_without_a_holder_opens_and_closes_its_own_session(fixture_log: Path) -> None:
    mcp = _stdio(fixture_log)
    pid = int((await mcp.call_tool("pid")).text)
    assert not mcp.statistics().connected
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_server_that_cannot_start_is_a_connection_error(tmp_path: Path) -> None:
    missing = McpServer(command=[str(tmp_path / "no-such-server")])
    with pytest.raises(McpConnectionError, match="could not be started or reached"):
        await missing.call_tool("add")
    with pytest.raises(McpConnectionError):
        async with missing:
            pass
    assert missing.statistics().holders == 0


async def test_a_server_that_never_answers_the_handshake_is_a_connect_timeout() -> None:
    silent = McpServer(
        command=[sys.executable, "-c", "import sys; sys.stdin.read()"], connect_timeout=0.5
    )
    with pytest.raises(McpTimeoutError, match=r"did not connect within 0\.5 s"):
        await silent.call_tool("add")
    assert not silent.statistics().connected


async def test_a_url_nobody_listens_on_is_a_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    unreachable = McpServer(url=f"http://127.0.0.1:{port}/mcp", connect_timeout=GUARD)
    with pytest.raises(McpConnectionError):
        await unreachable.list_tools()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "exactly one of command"),
        ({"command": ["x"], "url": "http://127.0.0.1:1/mcp"}, "exactly one of command"),
        ({"command": "python server.py"}, "non-empty list"),
        ({"command": []}, "non-empty list"),
        ({"url": "ftp://127.0.0.1/mcp"}, "http"),
        ({"command": ["x"], "headers": {"a": "b"}}, "url= servers only"),
        ({"command": ["x"], "call_timeout": 0}, "call_timeout must be positive"),
        ({"command": ["x"], "max_concurrent_calls": 0}, "at least 1"),
    ],
)
def test_bad_arguments_are_a_config_error(options: dict[str, Any], match: str) -> None:
    with pytest.raises(McpConfigError, match=match):
        McpServer(**options)


def test_moot_agents_imports_without_the_sdk_and_says_how_to_install_it() -> None:
    script = (
        "import sys; sys.modules['mcp'] = None\n"
        "import moot.agents\n"
        "try:\n"
        "    moot.agents.McpServer(command=['server'])\n"
        "except moot.agents.McpNotInstalledError as exc:\n"
        "    print(type(exc).__mro__[1].__name__, isinstance(exc, ImportError), exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=GUARD
    )
    assert done.stdout.strip() == (
        "McpError True MCP servers need the official `mcp` SDK: pip install 'moot[mcp]'"
    )


def test_a_result_is_text_for_the_model() -> None:
    from mcp.types import CallToolResult, EmbeddedResource, ImageContent, TextContent
    from mcp_types import TextResourceContents

    from moot.agents._mcp import MAX_RESULT_CHARS, _result_of

    mixed = CallToolResult(
        content=[
            TextContent(text="line one"),
            ImageContent(data="aGVsbG8=", mime_type="image/png"),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(uri="file:///a.txt", text="inside"),
            ),
        ]
    )
    assert _result_of(mixed).text == "line one\n[image image/png, 8 base64 characters]\ninside"
    structured = CallToolResult(content=[], structured_content={"rows": 2})
    assert json.loads(_result_of(structured).text) == {"rows": 2}
    huge = _result_of(CallToolResult(content=[TextContent(text="x" * (MAX_RESULT_CHARS + 5))]))
    assert huge.text.endswith("[... 5 more characters cut by moot]")


async def test_a_given_http_client_is_used_and_left_open(http_fixture: HttpFixture) -> None:
    import httpx2

    async with httpx2.AsyncClient() as http:
        mcp = McpServer(url=http_fixture.url, http_client=http)
        assert (await mcp.call_tool("add", {"a": 3, "b": 4})).text == "7"
        assert not mcp.statistics().connected
        assert not http.is_closed  # the caller's client: moot never closes it


def test_the_blocking_api_uses_mcp_tools_across_event_loops(
    fixture_log: Path, server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push(
        Reply(tool_calls=[{"name": "add", "arguments": {"a": 4, "b": 5}, "id": "c1"}]),
        "TERMINATE",
        Reply(tool_calls=[{"name": "add", "arguments": {"a": 5, "b": 5}, "id": "c2"}]),
        "TERMINATE",
    )
    assistant, user = _pair(llm_config)
    mcp = _stdio(fixture_log)
    asyncio.run(mcp.register(caller=assistant, executor=user))  # one loop

    user.initiate_chat(assistant, message="first", silent=True)  # a second loop
    user.initiate_chat(assistant, message="second", silent=True)  # and a third

    assert server.requests[1].messages[-1]["content"] == "9"
    assert server.requests[3].messages[-1]["content"] == "10"
    assert mcp.statistics().sessions_opened == 3
    assert not mcp.statistics().connected
