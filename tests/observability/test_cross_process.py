"""One trace across three processes: a client and two `moot worker` processes over a real
nats-server, exporting OTLP/HTTP to a loopback receiver this test starts.

Two chats: a relay of runtime actors spread over the two workers, each hop in an
`invoke_agent` span; and a classic group chat (classic_app's manager and three members on the
workers, a scripted model server) run by the client inside the user's own span.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from classic_app import MEMBERS, answer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from moot.agents.distributed import shared_type
from moot.runtime import AgentId
from moot.runtime.nats._placement import rendezvous
from moot.testing import Reply, ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from nats_helpers import NatsServer

    from moot.testing import RecordedRequest

HELPERS = Path(__file__).resolve().parents[1] / "_helpers"
HOPS = 12


class Receiver:
    """A loopback OTLP/HTTP endpoint: keeps each decoded trace export, answers 200."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.lock = threading.Lock()
        receiver = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    with receiver.lock:
                        receiver.traces.append(request)
                    reply = ExportTraceServiceResponse().SerializeToString()
                else:
                    reply = b""
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[tuple[str, Any]]:
        """(service name, span) for every span received."""
        found = []
        with self.lock:
            for request in self.traces:
                for resource_spans in request.resource_spans:
                    service = next(
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    )
                    for scope in resource_spans.scope_spans:
                        found += [(service, span) for span in scope.spans]
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        thread.join()
        running.server.server_close()


@pytest.fixture(params=["sdk", "lean"])
def lean(request: pytest.FixtureRequest) -> str:
    """Every process makes SDK spans, or the lean provider's records (`MOOT_OTEL_LEAN`)."""
    return "1" if request.param == "lean" else "0"


def _env(receiver: Receiver, service: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(HELPERS),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **extra,
    }


async def _start_workers(
    app: str, receiver: Receiver, tmp_path: Path, nats_url: str, **extra: str
) -> list[asyncio.subprocess.Process]:
    return [
        worker
        for worker, _ in await _start_workers_with_nodes(app, receiver, tmp_path, nats_url, **extra)
    ]


def _spread_chat_id(nodes: list[str]) -> str:
    """A chat id whose members are placed on both workers (placement is rendezvous
    over the workers' random node ids, so a fixed id would leave one worker idle now and then)."""
    for index in range(256):
        chat_id = f"traced-group-{index}"
        owners = {rendezvous(AgentId(shared_type(name), chat_id), nodes) for name in MEMBERS}
        if owners == set(nodes):
            return chat_id
    raise AssertionError("no chat id spreads over both workers")  # pragma: no cover


async def _start_workers_with_nodes(
    app: str, receiver: Receiver, tmp_path: Path, nats_url: str, **extra: str
) -> list[tuple[asyncio.subprocess.Process, str]]:
    workers = []
    for index in range(2):
        with (tmp_path / f"worker{index}.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "moot.runtime.nats", "--nats", nats_url),
                *("--agents", app, "--name", f"w{index}", "--stop-timeout", "2"),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=_env(receiver, f"worker-{index}", **extra),
            )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.startswith(b"moot-worker ready"), (tmp_path / f"worker{index}.log").read_text()
        workers.append((process, line.split()[-1].decode()))
    return workers


async def _stop(workers: list[asyncio.subprocess.Process]) -> None:
    for process in workers:
        if process.returncode is None:
            process.terminate()  # a graceful stop flushes the worker's spans
    for process in workers:
        await asyncio.wait_for(process.wait(), 30)


@pytest.mark.nats
async def test_a_chat_over_a_client_and_two_workers_is_one_trace(
    nats_server: NatsServer, receiver: Receiver, tmp_path: Path, lean: str
) -> None:
    workers = await _start_workers(
        "traced_app:setup", receiver, tmp_path, nats_server.url, MOOT_OTEL_LEAN=lean
    )
    try:
        client = await asyncio.create_subprocess_exec(
            *(sys.executable, str(HELPERS / "traced_app.py"), nats_server.url, str(HOPS)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_env(receiver, "client", MOOT_OTEL_LEAN=lean),
        )
        out, err = await asyncio.wait_for(client.communicate(), 60)
        assert client.returncode == 0, err.decode()
        assert out.decode().splitlines()[-1] == str(HOPS)
    finally:
        await _stop(workers)

    spans = receiver.spans()
    services = {service for service, _ in spans}
    assert services == {"client", "worker-0", "worker-1"}
    assert len({span.trace_id for _, span in spans}) == 1  # ONE trace id
    by_id = {span.span_id: span for _, span in spans}
    (root,) = [span for _, span in spans if span.name == "invoke_workflow client"]
    assert not root.parent_span_id
    hops = {span.name: span for _, span in spans if span.name.startswith("invoke_agent relay-")}
    assert len(hops) == HOPS
    assert by_id[hops["invoke_agent relay-0"].parent_span_id] is root
    for n in range(1, HOPS):  # each hop's parent is the hop that asked it, across processes
        assert (
            hops[f"invoke_agent relay-{n}"].parent_span_id
            == hops[f"invoke_agent relay-{n - 1}"].span_id
        )


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModelServer]:
    """The scripted model, on a background thread (the workers call it)."""

    def reply(request: RecordedRequest) -> Reply:
        return Reply(answer(request))

    with ScriptedModelServer(default=reply) as server:
        yield server


@pytest.mark.nats
async def test_a_group_chat_over_a_client_and_two_workers_is_one_trace(
    nats_server: NatsServer,
    receiver: Receiver,
    model: ScriptedModelServer,
    tmp_path: Path,
    lean: str,
) -> None:
    started = await _start_workers_with_nodes(
        "classic_app:setup",
        receiver,
        tmp_path,
        nats_server.url,
        MOOT_TEST_MODEL_URL=model.base_url,
        MOOT_OTEL_LEAN=lean,
    )
    workers = [worker for worker, _ in started]
    chat_id = _spread_chat_id([node for _, node in started])
    try:
        client = await asyncio.create_subprocess_exec(
            *(sys.executable, str(HELPERS / "traced_chat.py"), nats_server.url, model.base_url),
            chat_id,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_env(receiver, "client", MOOT_OTEL_LEAN=lean),
        )
        out, err = await asyncio.wait_for(client.communicate(), 90)
        assert client.returncode == 0, err.decode()
        assert out.decode().splitlines()[-1] == "7"  # the task and six turns
    finally:
        await _stop(workers)

    spans = receiver.spans()
    assert len({span.trace_id for _, span in spans}) == 1  # ONE trace id
    by_id = {span.span_id: span for _, span in spans}
    service_of = {span.span_id: service for service, span in spans}
    assert {service for service, _ in spans} == {"client", "worker-0", "worker-1"}

    (root,) = [span for _, span in spans if span.name == "plan a launch"]
    assert service_of[root.span_id] == "client"
    assert not root.parent_span_id
    (chat,) = [span for _, span in spans if span.name == "invoke_workflow chat_manager"]

    def ancestors(span: Any) -> list[Any]:
        found = []
        while span.parent_span_id:
            span = by_id[span.parent_span_id]
            found.append(span)
        return found

    assert root in ancestors(chat)  # the worker's chat is under the client's span
    turns = [span for _, span in spans if span.name.startswith("invoke_agent ")]
    # Six speaking turns, two each; members may also get a catch-up turn (they hear the end).
    assert {t.name for t in turns} == {f"invoke_agent {m}" for m in MEMBERS}
    for turn in turns:
        assert by_id[turn.parent_span_id] is chat  # chat -> turn
    calls = [span for _, span in spans if span.name == "chat scripted"]
    assert len(calls) == 6
    speakers = []
    for call in calls:
        turn = by_id[call.parent_span_id]
        assert turn in turns  # turn -> model call, in the turn's process
        assert service_of[call.span_id] == service_of[turn.span_id]
        speakers.append(turn.name.removeprefix("invoke_agent "))
    assert sorted(speakers) == sorted(MEMBERS * 2)
    # The turns ran on both workers, and at least one turn ran away from its chat's process.
    assert {service_of[t.span_id] for t in turns} == {"worker-0", "worker-1"}
