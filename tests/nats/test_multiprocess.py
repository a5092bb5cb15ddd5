"""Worker processes over a real broker: chats finish, survive `kill -9` and a broker restart.

Workers run `python -m moot.runtime.nats --agents chat_app:setup`; the test process is the
client, hosting the `collector` agent that receives each finished transcript.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from chat_app import ChatDone, StartChat, expected_lines, register_messages

from moot.runtime import (
    Agent,
    AgentId,
    DeadlineExceededError,
    DeliveryError,
    Envelope,
    Runtime,
    handler,
)
from moot.runtime.nats import NatsTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from nats_helpers import NatsServer, RuntimeMaker

HERE = Path(__file__).resolve().parent
HELPERS = HERE.parent / "_helpers"  # chat_app lives there, for the workers and for us
WORKER_FLAGS = ["--heartbeat", "0.2", "--member-ttl", "1.0", "--ack-wait", "2.0"]
WORKER_FLAGS += ["--reconnect-wait", "0.1", "--stop-timeout", "2"]


class Worker:
    """One worker process and its node id."""

    def __init__(self, process: asyncio.subprocess.Process, node: str, log: Path) -> None:
        self.process = process
        self.node = node
        self.log = log


def _log_file(path: Path) -> Any:
    return path.open("wb")


@pytest.fixture
async def spawn_worker(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    workers: list[Worker] = []

    async def spawn() -> Worker:
        index = len(workers)
        log_path = tmp_path / f"worker{index}.log"
        with _log_file(log_path) as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "moot.runtime.nats",
                "--nats",
                nats_server.url,
                "--agents",
                "chat_app:setup",
                *WORKER_FLAGS,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, "PYTHONPATH": str(HELPERS)},
            )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.startswith(b"moot-worker ready"), log_path.read_text()
        worker = Worker(process, line.split()[-1].decode(), log_path)
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        if worker.process.returncode is None:
            worker.process.terminate()
    for worker in workers:
        await asyncio.wait_for(worker.process.wait(), 15)


class Collector(Agent):
    """Receives finished transcripts (at-least-once: a chat may report twice, identically)."""

    def __init__(self, context: Any, board: Board) -> None:
        super().__init__(context)
        self.board = board

    @handler
    async def on_done(self, message: ChatDone, ctx: Envelope) -> None:
        self.board.record(message)


class Board:
    """What the client has heard, with events for the test to wait on."""

    def __init__(self, chats: int) -> None:
        self.chats = chats
        self.done: dict[str, list[str]] = {}
        self.workers: dict[str, str] = {}
        self.reports = 0
        self.names = {f"c{i}" for i in range(chats)}
        self.extra: list[str] = []
        self.all_done = asyncio.Event()
        self._marks: list[tuple[int, asyncio.Event]] = []

    def record(self, message: ChatDone) -> None:
        if message.chat not in self.names:  # e.g. a probe sent during an outage
            self.extra.append(message.chat)
            return
        self.reports += 1
        previous = self.done.setdefault(message.chat, message.lines)
        assert previous == message.lines, f"{message.chat} finished twice, differently"
        self.workers.setdefault(message.chat, message.worker)
        for count, event in self._marks:
            if len(self.done) >= count:
                event.set()
        if len(self.done) == self.chats:
            self.all_done.set()

    async def wait_all(self, timeout: float) -> None:
        """Wait until every chat reported; on timeout, name the missing ones."""
        try:
            await asyncio.wait_for(self.all_done.wait(), timeout)
        except TimeoutError:
            missing = sorted(set(f"c{i}" for i in range(self.chats)) - set(self.done))
            raise AssertionError(f"chats never finished: {missing}") from None

    def reached(self, count: int) -> asyncio.Event:
        event = asyncio.Event()
        self._marks.append((count, event))
        if len(self.done) >= count:
            event.set()
        return event


async def start_client(make_runtime: RuntimeMaker, chats: int) -> tuple[Runtime, Board]:
    board = Board(chats)

    def setup(runtime: Runtime) -> None:
        register_messages(runtime)
        runtime.register("collector", lambda ctx: Collector(ctx, board))

    return await make_runtime(setup), board


async def start_chats(client: Runtime, chats: int, turns: int, seats: int) -> None:
    for i in range(chats):
        start = StartChat(chat=f"c{i}", turns=turns, seats=seats, reply_to="client")
        await client.tell(start, AgentId("chat", f"c{i}"))


def assert_transcripts(board: Board, turns: int, seats: int) -> None:
    assert len(board.done) == board.chats
    for chat, lines in board.done.items():
        assert lines == expected_lines(chat, turns, seats), chat


async def test_three_workers_run_a_hundred_chats(
    spawn_worker: Callable[[], Any], make_runtime: RuntimeMaker
) -> None:
    workers = [await spawn_worker() for _ in range(3)]
    client, board = await start_client(make_runtime, chats=100)
    await start_chats(client, 100, turns=10, seats=3)
    await board.wait_all(60)
    assert_transcripts(board, turns=10, seats=3)
    finishing = set(board.workers.values())
    assert finishing == {str(w.process.pid) for w in workers}  # the keys spread over all three


async def test_kill_9_moves_keys_and_loses_nothing(
    spawn_worker: Callable[[], Any], make_runtime: RuntimeMaker
) -> None:
    workers = [await spawn_worker() for _ in range(3)]
    client, board = await start_client(make_runtime, chats=60)
    await start_chats(client, 60, turns=40, seats=4)
    await asyncio.wait_for(board.reached(10).wait(), 60)
    victim = workers[1]
    victim.process.kill()  # SIGKILL: no goodbye, unacked tells stay with its consumer
    await victim.process.wait()
    killed_at = board.reports
    await board.wait_all(60)
    assert_transcripts(board, turns=40, seats=4)
    assert board.reports > killed_at
    later = {board.workers[c] for c in board.workers} - {str(victim.process.pid)}
    assert later <= {str(w.process.pid) for w in workers if w is not victim}
    assert isinstance(client.transport, NatsTransport)
    assert victim.node not in client.transport.membership
    logs = [w.log.read_text() for w in workers if w is not victim]
    assert any(f"previous={victim.node}" in text for text in logs)  # its leases moved
    adopted = f"consumer=n_{victim.node}"  # its stream was adopted (by a worker or the client)
    assert any(adopted in text for text in logs) or (
        f"n_{victim.node}" in client.transport.adopted_consumers
    )


async def test_broker_restart_mid_run_reconnects_and_finishes(
    spawn_worker: Callable[[], Any], make_runtime: RuntimeMaker, nats_server: NatsServer
) -> None:
    for _ in range(2):
        await spawn_worker()
    client, board = await start_client(make_runtime, chats=30)
    await start_chats(client, 30, turns=40, seats=3)
    await asyncio.wait_for(board.reached(5).wait(), 60)
    await asyncio.to_thread(nats_server.stop)
    # While the broker is away a request fails with a typed error at its deadline: no hang.
    with pytest.raises((DeadlineExceededError, DeliveryError)):
        await client.send(
            StartChat(chat="x", turns=1, seats=1, reply_to="client"),
            AgentId("chat", "during-outage"),
            timeout=0.5,
        )
    await asyncio.to_thread(nats_server.start)
    await board.wait_all(60)
    assert_transcripts(board, turns=40, seats=3)
