"""AutoGen-style chats whose agents live on worker processes over a real nats-server.

Workers run `python -m moot.runtime.nats --agents classic_app:setup`, each building the agents
with its own model clients pointed at the test's `ScriptedModelServer`. The test process is the
client: it builds the same agents as stand-ins and runs the chat with only the runtime's
transport changed. Each transcript is compared with the same chat run in one process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from classic_app import MEMBERS, answer, build, setup
from pg_helpers import PostgresServer, require_postgres

from moot.agents import AgentConfigError, ConversableAgent, Say, Turn
from moot.agents.distributed import host_agents, register_chat_messages, shared_type
from moot.groupchat import (
    ChatWaitingForInputError,
    GroupChatResult,
    GroupChatRun,
    MessageEvent,
    SpeakerSelectedEvent,
    StopReason,
    TerminationEvent,
    register_groupchat_messages,
)
from moot.groupchat._distributed import FeedCursor
from moot.groupchat._events import event_channel
from moot.journal import InputAlreadyAnsweredError, open_store
from moot.models import Usage
from moot.runtime import AgentId, Runtime
from moot.runtime.nats import NatsTransport
from moot.testing import Reply, ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from nats_helpers import NatsServer, RuntimeMaker

    from moot.testing import RecordedRequest

HERE = Path(__file__).resolve().parent
HELPERS = HERE.parent / "_helpers"
WORKER_FLAGS = ["--heartbeat", "0.2", "--member-ttl", "1.0", "--ack-wait", "2.0"]
WORKER_FLAGS += ["--reconnect-wait", "0.1", "--stop-timeout", "2"]


@pytest.fixture
def model_latency() -> float:
    """Seconds each model answer takes (a test parametrizes it to kill a worker mid-chat)."""
    return 0.0


class Requests:
    """Counts the model's requests from its thread and wakes a test waiting for a number."""

    def __init__(self) -> None:
        self.count = 0
        self._waiting: list[tuple[int, asyncio.Event, asyncio.AbstractEventLoop]] = []
        self._lock = threading.Lock()

    def seen(self) -> None:
        with self._lock:
            self.count += 1
            for n, event, loop in self._waiting:
                if self.count >= n:
                    loop.call_soon_threadsafe(event.set)

    async def reach(self, n: int) -> None:
        event = asyncio.Event()
        with self._lock:
            self._waiting.append((n, event, asyncio.get_running_loop()))
            if self.count >= n:
                event.set()
        await asyncio.wait_for(event.wait(), 60)


class Gate:
    """Holds the model's answer to one request (by number) until the test opens it. The model
    answers from its own thread, so the hold blocks only that thread (one chat in flight)."""

    def __init__(self) -> None:
        self.at: int | None = None
        self.reached = threading.Event()
        self.opened = threading.Event()
        self.forced = False

    def hold(self, request_number: int) -> None:
        self.at = request_number

    def passing(self, request_number: int) -> None:
        if request_number != self.at:
            return
        self.reached.set()
        if not self.opened.wait(60):  # a safety net against a hung test, not a timing
            self.forced = True


@pytest.fixture
def requests() -> Requests:
    return Requests()


@pytest.fixture
def gate() -> Iterator[Gate]:
    made = Gate()
    yield made
    made.opened.set()


@pytest.fixture
def model(model_latency: float, requests: Requests, gate: Gate) -> Iterator[ScriptedModelServer]:
    """The scripted model, on a background thread (workers in other processes call it)."""

    def reply(request: RecordedRequest) -> Reply:
        requests.seen()
        gate.passing(requests.count)
        return Reply(answer(request), latency=model_latency)

    with ScriptedModelServer(default=reply) as server:
        yield server


class Worker:
    def __init__(self, process: asyncio.subprocess.Process, node: str) -> None:
        self.process = process
        self.node = node


@pytest.fixture
async def workers(
    nats_server: NatsServer, model: ScriptedModelServer, tmp_path: Path
) -> AsyncIterator[Callable[[int], Awaitable[list[Worker]]]]:
    """Start `n` workers hosting `classic_app`; stopped (SIGTERM) after the test."""
    started: list[asyncio.subprocess.Process] = []

    async def spawn(n: int) -> list[Worker]:
        made: list[Worker] = []
        for _ in range(n):
            log_path = tmp_path / f"worker{len(started)}.log"
            with log_path.open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "moot.runtime.nats",
                    "--nats",
                    nats_server.url,
                    "--agents",
                    "classic_app:setup",
                    *WORKER_FLAGS,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    env={
                        **os.environ,
                        "PYTHONPATH": str(HELPERS),
                        "MOOT_TEST_MODEL_URL": model.base_url,
                    },
                )
            started.append(process)
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line.startswith(b"moot-worker ready"), log_path.read_text()
            made.append(Worker(process, line.split()[-1].decode()))
        return made

    yield spawn
    for process in started:
        if process.returncode is None:
            process.terminate()
    for process in started:
        await asyncio.wait_for(process.wait(), 15)


async def reference_two_agents(
    model: ScriptedModelServer, turns: int = 3
) -> tuple[list[Any], str, int]:
    """The two-agent chat in one process: its history, summary and model requests."""
    before = len(model.requests)
    app = build(model.base_url)
    async with Runtime() as runtime:
        result = await app.user.a_initiate_chat(
            app.assistant, message="plan a trip", max_turns=turns, runtime=runtime
        )
    return result.chat_history, result.summary, len(model.requests) - before


async def test_two_agent_chat_runs_on_workers(
    workers: Callable[[int], Awaitable[list[Any]]],
    make_runtime: RuntimeMaker,
    model: ScriptedModelServer,
) -> None:
    history, summary, asked = await reference_two_agents(model)
    await workers(2)
    client = await make_runtime()
    app = build(model.base_url)  # stand-ins: the chat runs on the workers
    before = len(model.requests)
    result = await app.user.a_initiate_chat(
        app.assistant, message="plan a trip", max_turns=3, runtime=client
    )
    assert result.chat_history == history
    assert result.summary == summary
    assert len(model.requests) - before == asked == 3  # each model turn asked once
    assert result.cost.calls == 3  # the assistant's usage came back from its worker
    assert app.user.chat_messages[app.assistant] == history  # the stand-in keeps the thread
    assert client.agent_types() == frozenset()  # the client hosted nothing


async def reference_group(model: ScriptedModelServer) -> list[Any]:
    app = build(model.base_url)
    async with Runtime() as runtime:
        result = await app.manager.a_run("plan a launch", runtime=runtime)
    return result.chat_history


async def test_group_chat_runs_on_workers(
    workers: Callable[[int], Awaitable[list[Any]]],
    make_runtime: RuntimeMaker,
    model: ScriptedModelServer,
) -> None:
    history = await reference_group(model)
    assert [m["name"] for m in history[1:]] == [*MEMBERS, *MEMBERS]  # 6 turns, round robin
    await workers(2)
    client = await make_runtime()
    app = build(model.base_url)
    before = len(model.requests)
    result = await app.manager.a_run("plan a launch", runtime=client)
    assert result.chat_history == history
    assert result.stop_reason.condition == "MaxMessages"
    assert len(model.requests) - before == 6
    assert app.manager.groupchat.messages == history  # the client's stand-in saw the end


async def test_group_chat_events_reach_the_client(
    workers: Callable[[int], Awaitable[list[Any]]],
    make_runtime: RuntimeMaker,
    model: ScriptedModelServer,
) -> None:
    history = await reference_group(model)
    await workers(2)
    client = await make_runtime()
    app = build(model.base_url)
    events = [event async for event in app.manager.run_stream("plan a launch", runtime=client)]
    messages = [event for event in events if isinstance(event, MessageEvent)]
    assert [dict(event.message) for event in messages] == history
    selected = [event.speaker for event in events if isinstance(event, SpeakerSelectedEvent)]
    assert selected == [*MEMBERS, *MEMBERS]
    last = events[-1]
    assert isinstance(last, TerminationEvent)
    assert last.result is not None
    assert last.result.chat_history == history


async def test_group_chat_events_reach_the_client_as_they_happen(
    workers: Callable[[int], Awaitable[list[Any]]],
    make_runtime: RuntimeMaker,
    model: ScriptedModelServer,
    requests: Requests,
    gate: Gate,
) -> None:
    """The manager runs on a worker; the client sees turn 1's message while the model still
    holds its answer to turn 2, so events flow live, not with the chat's result."""
    history = await reference_group(model)
    await workers(2)
    client = await make_runtime()
    app = build(model.base_url)
    gate.hold(requests.count + 2)  # the model's answer for turn 2
    events: list[Any] = []
    seen_while_held: list[int] = []
    async for event in app.manager.run_stream("plan a launch", runtime=client):
        events.append(event)
        if isinstance(event, MessageEvent) and event.turn == 1:
            await asyncio.to_thread(gate.reached.wait, 60)  # turn 2 is asked, and held
            seen_while_held.append(event.turn)
            assert not gate.opened.is_set()
            gate.opened.set()
    assert seen_while_held == [1]
    assert not gate.forced  # nobody had to open the gate for the chat to go on
    messages = [event for event in events if isinstance(event, MessageEvent)]
    assert [dict(event.message) for event in messages] == history  # in order, none lost
    assert [event.turn for event in messages] == list(range(len(history)))
    last = events[-1]
    assert isinstance(last, TerminationEvent)
    assert last.result is not None
    assert last.result.chat_history == history


async def test_two_workers_run_many_chats_at_once(
    workers: Callable[[int], Awaitable[list[Any]]],
    make_runtime: RuntimeMaker,
    model: ScriptedModelServer,
) -> None:
    history, _, _ = await reference_two_agents(model)
    await workers(2)
    client = await make_runtime()
    app = build(model.base_url)
    results = await asyncio.gather(
        *(
            app.user.a_initiate_chat(
                app.assistant, message="plan a trip", max_turns=3, runtime=client
            )
            for _ in range(20)
        )
    )
    assert all(result.chat_history == history for result in results)
    assert len({result.chat_id for result in results}) == 20


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(require_postgres())
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def shared_journal(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every worker journals to one Postgres; a lost worker's chat leases expire in 1 s."""
    monkeypatch.setenv("MOOT_JOURNAL_URL", postgres_server.dsn)
    monkeypatch.setenv("MOOT_TEST_LEASE_TTL", "1.0")
    return postgres_server.dsn


def asked(model: ScriptedModelServer, since: int) -> Counter[tuple[str, int]]:
    """Each model request since `since` as (who asked, messages seen): a turn asked twice
    shows up as a count of 2."""
    return Counter(
        (str(request.messages[0].get("content")), len(request.messages))
        for request in model.requests[since:]
    )


@pytest.mark.parametrize("model_latency", [0.2])
async def test_a_group_chat_moves_to_a_survivor_when_its_worker_is_killed(
    shared_journal: str,
    workers: Callable[[int], Awaitable[list[Worker]]],
    make_runtime: RuntimeMaker,
    model: ScriptedModelServer,
    requests: Requests,
) -> None:
    history = await reference_group(model)  # in one process (journaled to Postgres too)
    reference = asked(model, 0)
    processes = await workers(2)
    client = await make_runtime(request_timeout=60.0)  # fails over at the TTLs, not this
    app = build(model.base_url)
    before = len(model.requests)
    chat = asyncio.ensure_future(app.manager.a_run("plan a launch", runtime=client, chat_id="f1"))
    await requests.reach(before + 3)  # turns 1 and 2 done, turn 3 asked
    assert isinstance(client.transport, NatsTransport)
    owner = client.transport.membership.owner(AgentId(shared_type("chat_manager"), "f1"))
    victim = next(worker.process for worker in processes if worker.node == owner)
    victim.kill()  # SIGKILL: no goodbye
    await victim.wait()
    result = await chat
    assert result.chat_history == history  # the same transcript as in one process
    assert result.stop_reason.condition == "MaxMessages"
    counts = asked(model, before)
    assert set(counts) == set(reference)  # every turn was asked ...
    twice = [key for key, n in counts.items() if n > 1]
    assert len(twice) <= 1  # ... once, but the turn in flight at the kill
    assert all(n <= 2 for n in counts.values())


@pytest.mark.parametrize("model_latency", [0.2])
async def test_a_group_chat_goes_on_when_a_members_worker_is_killed(
    shared_journal: str,
    workers: Callable[[int], Awaitable[list[Worker]]],
    make_runtime: RuntimeMaker,
    model: ScriptedModelServer,
    requests: Requests,
) -> None:
    """The manager's worker survives; the worker running carol dies during her turn. The
    manager hears it once its membership drops that worker, opens carol again on itself from
    the chat's history and asks her turn once more."""
    history = await reference_group(model)
    reference = asked(model, 0)
    processes = await workers(2)
    client = await make_runtime(request_timeout=60.0)
    assert isinstance(client.transport, NatsTransport)
    membership = client.transport.membership

    def owner(name: str, chat: str) -> str | None:
        return membership.owner(AgentId(shared_type(name), chat))

    chat_id = next(
        c for c in (f"m{i}" for i in range(64)) if owner("chat_manager", c) != owner("carol", c)
    )
    app = build(model.base_url)
    before = len(model.requests)
    chat = asyncio.ensure_future(
        app.manager.a_run("plan a launch", runtime=client, chat_id=chat_id)
    )
    await requests.reach(before + 3)  # alice and bob done, carol asked
    victim = next(w.process for w in processes if w.node == owner("carol", chat_id))
    victim.kill()
    await victim.wait()
    result = await chat
    assert result.chat_history == history
    counts = asked(model, before)
    assert set(counts) == set(reference)
    assert sum(1 for n in counts.values() if n > 1) <= 1  # only the turn in flight, once more
    assert all(n <= 2 for n in counts.values())


@pytest.mark.parametrize("model_latency", [0.2])
async def test_a_two_agent_chat_moves_to_a_survivor_when_a_worker_is_killed(
    workers: Callable[[int], Awaitable[list[Worker]]],
    make_runtime: RuntimeMaker,
    model: ScriptedModelServer,
    requests: Requests,
) -> None:
    """The client drives a two-agent chat and journals it (SQLite here); when the worker
    running the assistant dies mid-turn, both sides reopen from the journal on the survivor
    and the lost turn is asked once more."""
    history, summary, _ = await reference_two_agents(model, turns=4)
    processes = await workers(2)
    client = await make_runtime(request_timeout=60.0)
    app = build(model.base_url)
    before = len(model.requests)
    chat = asyncio.ensure_future(
        app.user.a_initiate_chat(
            app.assistant, message="plan a trip", max_turns=4, runtime=client, chat_id="t1"
        )
    )
    await requests.reach(before + 2)  # the assistant's first reply done, its second asked
    assert isinstance(client.transport, NatsTransport)
    owner = client.transport.membership.owner(AgentId(shared_type("assistant"), "t1"))
    victim = next(worker.process for worker in processes if worker.node == owner)
    victim.kill()
    await victim.wait()
    result = await chat
    assert result.chat_history == history
    assert result.summary == summary
    counts = asked(model, before)
    assert sum(counts.values()) in (4, 5)  # four replies; the one in flight maybe twice
    assert all(n <= 2 for n in counts.values())
    assert sum(1 for n in counts.values() if n == 2) <= 1


async def test_a_member_on_a_worker_asks_a_human_and_another_process_answers(
    shared_journal: str,
    workers: Callable[[int], Awaitable[list[Worker]]],
    make_runtime: RuntimeMaker,
    model: ScriptedModelServer,
) -> None:
    """The reviewer (human_input_mode ALWAYS) runs on a worker, which has no console: its
    question waits in the shared journal with a single-use token. `moot chats answer` in
    another process answers it once (a second answer is refused), and running the chat again
    by its id goes on from the journal with that answer; no model turn is asked twice."""
    await workers(2)
    client = await make_runtime()
    assert isinstance(client.transport, NatsTransport)
    membership = client.transport.membership

    def apart(chat: str) -> bool:  # the reviewer runs on another worker than its manager
        owner = membership.owner(AgentId(shared_type("review_manager"), chat))
        return owner != membership.owner(AgentId(shared_type("reviewer"), chat))

    chat_id = next(chat for chat in (f"h{i}" for i in range(64)) if apart(chat))
    app = build(model.base_url)
    before = len(model.requests)
    with pytest.raises(ChatWaitingForInputError) as waiting:
        await app.review.a_run("review the plan", runtime=client, chat_id=chat_id)
    assert waiting.value.chat_id == chat_id
    assert len(model.requests) - before == 1  # alice spoke; the reviewer waits

    async def cli(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "moot.cli",
            "chats",
            *args,
            "--store",
            shared_journal,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode()

    code, out = await cli("answer", chat_id, "ship it")
    assert code == 0, out
    code, out = await cli("answer", chat_id, "no, wait")
    assert code != 0
    assert "answered already" in out
    store = await open_store(shared_journal)
    try:
        with pytest.raises(InputAlreadyAnsweredError):
            await store.answer_input(waiting.value.token, "again")
    finally:
        await store.aclose()
    result = await app.review.a_run("review the plan", runtime=client, chat_id=chat_id)
    assert [m.get("name") for m in result.chat_history] == ["user", "alice", "reviewer"]
    assert result.chat_history[-1]["content"] == "ship it"
    assert len(model.requests) - before == 1  # alice's turn was not asked again


# -- without a broker: names and the codec ---------------------------------------------------


def test_shared_types_are_deterministic_and_distinct() -> None:
    assert shared_type("assistant") == "moot.agent.assistant"
    assert shared_type("data analyst") == shared_type("data analyst")
    assert shared_type("data analyst") != shared_type("data_analyst")
    AgentId(shared_type("ünïcode name!"))  # a valid agent type


def test_two_agents_with_one_name_cannot_share_a_worker() -> None:
    runtime = Runtime()
    host_agents(runtime, ConversableAgent("twin", llm_config=False))
    with pytest.raises(AgentConfigError, match="twin"):
        host_agents(runtime, ConversableAgent("twin", llm_config=False))


async def test_in_process_chats_keep_private_types() -> None:
    a = ConversableAgent("same", llm_config=False, human_input_mode="NEVER")
    b = ConversableAgent("same", llm_config=False, human_input_mode="NEVER")
    async with Runtime() as runtime:
        await a.attach(runtime)
        await b.attach(runtime)
        assert a.participant_id(runtime, "c") != b.participant_id(runtime, "c")
        assert shared_type("same") not in runtime.agent_types()


def test_chat_messages_cross_a_codec_under_stable_names() -> None:
    runtime = Runtime()
    register_groupchat_messages(runtime)
    register_chat_messages(runtime)  # again: harmless
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turn = Turn(sender="a", message={"content": None, "tool_calls": [call]}, backlog=({},))
    assert runtime.codec.encode(turn)["type"] == "moot.agents.Turn"
    assert runtime.codec.loads(runtime.codec.dumps(turn)) == turn
    say = Say(message="hi", context={"k": [1, 2]})
    assert runtime.codec.loads(runtime.codec.dumps(say)) == say
    result = GroupChatResult(
        chat_id="c",
        chat_history=[{"content": "hi", "name": "a"}],
        stop_reason=StopReason(condition="MaxMessages", detail="done"),
        turns=1,
        last_speaker="a",
        usage=Usage(prompt_tokens=3),
        cost=0.5,
    )
    event = runtime.codec.encode(MessageEvent(chat_id="c", turn=0, speaker="a", message={}))
    run = GroupChatRun(result=result, events=(event,))
    assert runtime.codec.encode(run)["type"] == "moot.groupchat.GroupChatRun"
    back = runtime.codec.loads(runtime.codec.dumps(run))
    assert back == run
    assert isinstance(runtime.codec.decode(back.events[0]), MessageEvent)


def test_a_worker_setup_hosts_every_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOOT_TEST_MODEL_URL", "http://127.0.0.1:9/v1")
    runtime = Runtime()
    setup(runtime)
    names = ("user", "assistant", "chat_manager", *MEMBERS, "review_manager", "reviewer")
    assert runtime.agent_types() == {shared_type(name) for name in names}


async def test_a_feed_cursor_hands_on_each_event_once_in_order() -> None:
    """Live events, then the rest from the reply (the feed's reader stalled at event 2, which
    came both ways), then a retried run on a survivor that numbers afresh."""
    runtime = Runtime()
    register_groupchat_messages(runtime)
    sink, receive = event_channel(16)
    cursor = FeedCursor(runtime, sink)

    def event(turn: int) -> dict[str, Any]:
        return runtime.codec.encode(MessageEvent(chat_id="c", turn=turn, speaker="a", message={}))

    for number in range(3):
        body = {"run": "r1", "n": number, "event": event(number)}
        await cursor.on_payload(json.dumps(body).encode())
    stop = StopReason(condition="x", detail="")
    result = GroupChatResult(
        chat_id="c",
        chat_history=[],
        stop_reason=stop,
        turns=0,
        last_speaker=None,
        usage=Usage(),
        cost=0.0,
    )
    await cursor.rest(GroupChatRun(result=result, events=(event(2), event(3)), run="r1", first=2))
    await cursor.rest(GroupChatRun(result=result, events=(event(9),), run="r2", first=0))
    await sink.aclose()
    with receive:
        turns = [e.turn async for e in receive]
    assert turns == [0, 1, 2, 3, 9]
