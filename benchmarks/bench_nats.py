"""NATS transport benchmarks, with raw nats-py baselines measured in the same run.

W1  request/reply across two processes: `runtime.send` (a deadline on every send) to an echo
    agent in a worker process, sequential (latency) and with 100 in flight (throughput),
    against raw nats-py `request` to a raw responder process.
W2  fan-out across two processes: `runtime.publish` to a topic with 10 subscribed agent types
    in the worker. Each delivery is a JetStream publish (acked by the stream, pipelined) and is
    acked by the worker after its handler ran. Baselines, 10 per message: raw `js.publish`
    (awaited one by one), raw `js.publish_async` (pipelined: the same durability and shape as
    moot's; also with a `Nats-Msg-Id` header, which moot sends for deduplication) and raw core
    `publish` (fire-and-forget, no durability). moot is timed to "confirmed" (every delivery
    acked by the stream, `NatsTransport.flush`), as raw `publish_async` is to
    `publish_async_completed`.

Throughput phases run in ROUNDS rounds, raw and moot interleaved, and report the median round, so
a noisy neighbour hits both sides alike. Each phase also reports CPU per operation: this
process (`time.process_time`) and the other one (the raw responder or the moot worker, from
/proc), a figure the shared machine's load disturbs far less than wall time.

The script starts its own `nats-server -js` on a free loopback port.

    python benchmarks/bench_nats.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pydantic

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, percentile, versions, write

from moot.runtime import (
    Agent,
    AgentId,
    Envelope,
    Runtime,
    TopicId,
    TypeSubscription,
    handler,
)
from moot.runtime.nats import NatsTransport

FANOUT = 10
ROUNDS = 3


class Echo(pydantic.BaseModel):
    n: int


class Tick(pydantic.BaseModel):
    n: int


class WaitFor(pydantic.BaseModel):
    total: int


class _Counter:
    """Deliveries handled in this worker process (one process per run, so a module global)."""

    count = 0
    target = 0
    reached: asyncio.Event | None = None

    @classmethod
    def hit(cls) -> None:
        cls.count += 1
        if cls.reached is not None and cls.count >= cls.target:
            cls.reached.set()


class EchoAgent(Agent):
    @handler
    async def on_echo(self, message: Echo, ctx: Envelope) -> Echo:
        return message

    @handler
    async def on_wait(self, message: WaitFor, ctx: Envelope) -> int:
        _Counter.target = message.total
        _Counter.reached = asyncio.Event()
        if _Counter.count < message.total:
            await _Counter.reached.wait()
        return _Counter.count


class Sink(Agent):
    @handler
    async def on_tick(self, message: Tick, ctx: Envelope) -> None:
        _Counter.hit()


def register(runtime: Runtime) -> None:
    for message_type in (Echo, Tick, WaitFor):
        runtime.codec.register(message_type, name=f"bench.{message_type.__name__}")
    for i in range(FANOUT):
        runtime.subscribe(TypeSubscription("fan", f"sink{i}"))


def setup(runtime: Runtime) -> None:
    """Worker side (loaded with `--agents bench_nats:setup`)."""
    register(runtime)
    runtime.register("echo", EchoAgent)
    for i in range(FANOUT):
        runtime.register(f"sink{i}", Sink)


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(store: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = _free_port()
    command = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    ready = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if b"Server is ready" in line:
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(10) or process.poll() is not None:
        raise SystemExit("nats-server did not start")
    return process, f"nats://127.0.0.1:{port}"


def start_child(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    process = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=open("/tmp/bench_child.log", "ab"),
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if b"ready" not in line:
        raise SystemExit(f"child did not start: {args}")
    return process


async def raw_responder(url: str) -> None:
    """A raw nats-py echo responder: the W1 baseline's other process."""
    import nats

    nc = await nats.connect(url)

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await nc.subscribe("raw.echo", cb=echo)
    await nc.flush()
    print("raw ready", flush=True)
    await asyncio.Event().wait()


# --------------------------------------------------------------------------- measurements


async def _timed_sequential(call: Any, n: int) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - start)
    return samples


def cpu_seconds(pid: int) -> float:
    """User + system CPU of another process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall time and CPU (here and in one other process) of a phase of `ops` operations."""

    def __init__(self, peer_pid: int) -> None:
        self.peer_pid = peer_pid

    async def run(self, phase: Any, ops: int) -> dict[str, float]:
        cpu, peer = time.process_time(), cpu_seconds(self.peer_pid)
        start = time.perf_counter()
        await phase()
        wall = time.perf_counter() - start
        return {
            "per_s": ops / wall,
            "cpu_us_here": (time.process_time() - cpu) / ops * 1e6,
            "cpu_us_there": (cpu_seconds(self.peer_pid) - peer) / ops * 1e6,
        }


def summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """The median round of each figure (rounded), and every round's rate."""
    keys = rounds[0].keys()
    out: dict[str, Any] = {k: round(median([r[k] for r in rounds]), 1) for k in keys}
    out["per_s"] = round(out["per_s"])
    out["rounds_per_s"] = [round(r["per_s"]) for r in rounds]
    return out


async def _throughput(call: Any, n: int, in_flight: int) -> float:
    gate = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


def _latency(samples: list[float]) -> dict[str, float]:
    return {
        "p50_us": round(median(samples) * 1e6, 1),
        "p99_us": round(percentile(samples, 99) * 1e6, 1),
    }


async def w1(url: str, n_seq: int, n_par: int, pids: dict[str, int]) -> dict[str, Any]:
    import nats

    nc = await nats.connect(url)
    payload = b'{"n":1}'

    async def raw(i: int) -> None:
        await nc.request("raw.echo", payload, timeout=5)

    client = Runtime(transport=NatsTransport(url))
    register(client)
    await client.start()
    target = AgentId("echo", "k")

    async def moot(i: int) -> None:
        await client.send(Echo(n=i), target, timeout=5)

    for call in (raw, moot):  # warm up both
        await _timed_sequential(call, 200)
    raw_seq = await _timed_sequential(raw, n_seq)
    moot_seq = await _timed_sequential(moot, n_seq)
    raw_rounds, moot_rounds = [], []
    raw_meter, moot_meter = Meter(pids["raw"]), Meter(pids["worker"])
    for _ in range(ROUNDS):
        raw_rounds.append(await raw_meter.run(lambda: _throughput(raw, n_par, 100), n_par))
        moot_rounds.append(await moot_meter.run(lambda: _throughput(moot, n_par, 100), n_par))
    await client.stop()
    await nc.close()
    raw_par, moot_par = summary(raw_rounds), summary(moot_rounds)
    cpu_raw = raw_par["cpu_us_here"] + raw_par["cpu_us_there"]
    cpu_moot = moot_par["cpu_us_here"] + moot_par["cpu_us_there"]
    return {
        "sequential": {"n": n_seq, "raw": _latency(raw_seq), "moot": _latency(moot_seq)},
        "in_flight_100": {
            "n": n_par,
            "rounds": ROUNDS,
            "raw_req_per_s": raw_par["per_s"],
            "moot_req_per_s": moot_par["per_s"],
            "raw": raw_par,
            "moot": moot_par,
        },
        "ratio_p50": round(median(moot_seq) / median(raw_seq), 2),
        "ratio_throughput": round(raw_par["per_s"] / moot_par["per_s"], 2),
        "ratio_cpu_per_request": round(cpu_moot / cpu_raw, 2),
        "target": "100 in flight: moot within 1.3x raw nats-py (ratio_throughput)",
    }


async def w2(url: str, n: int, pids: dict[str, int]) -> dict[str, Any]:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="rawfan", subjects=["rawfan.>"])
    data = b'{"type":"bench.Tick","data":{"n":1}}'
    deliveries = n * FANOUT

    start = time.perf_counter()
    for _ in range(n):
        for j in range(FANOUT):
            await js.publish(f"rawfan.{j}", data)
    raw_js = deliveries / (time.perf_counter() - start)

    async def raw_async(with_id: bool) -> None:
        for i in range(n):
            for j in range(FANOUT):
                headers = {"Nats-Msg-Id": f"{os.urandom(8).hex()}>{i}.{j}"} if with_id else None
                await js.publish_async(f"rawfan.{j}", data, headers=headers)
        await js.publish_async_completed()

    start = time.perf_counter()
    for _ in range(n):
        for j in range(FANOUT):
            await nc.publish(f"rawcore.{j}", data)
    await nc.flush()
    raw_core = deliveries / (time.perf_counter() - start)

    client = Runtime(transport=NatsTransport(url))
    register(client)
    await client.start()
    transport = client.transport
    assert isinstance(transport, NatsTransport)
    topic = TopicId("fan", "room")
    accepted: list[float] = []

    async def moot() -> None:
        start = time.perf_counter()
        for i in range(n):
            await client.publish(Tick(n=i), topic)
        accepted.append(deliveries / (time.perf_counter() - start))
        await transport.flush()

    here = Meter(pids["worker"])  # the worker's CPU is its pull loop and handlers
    raw_rounds, raw_id_rounds, moot_rounds = [], [], []
    for r in range(ROUNDS):
        raw_rounds.append(await here.run(lambda: raw_async(False), deliveries))
        raw_id_rounds.append(await here.run(lambda: raw_async(True), deliveries))
        if r == ROUNDS - 1:
            end_start = time.perf_counter()
        moot_rounds.append(await here.run(moot, deliveries))
    total = ROUNDS * deliveries
    handled = await client.send(WaitFor(total=total), AgentId("echo", "k"), timeout=600)
    end_to_end = deliveries / (time.perf_counter() - end_start)
    await client.stop()
    await nc.close()
    raw_async_s, raw_id_s = summary(raw_rounds), summary(raw_id_rounds)
    moot_s = summary(moot_rounds)
    moot_accept = median(accepted)
    return {
        "publishes": n,
        "deliveries": deliveries,
        "rounds": ROUNDS,
        "handled": handled,
        "raw_js_publish_per_s": round(raw_js),
        "raw_js_publish_async_per_s": raw_async_s["per_s"],
        "raw_js_publish_async_msg_id_per_s": raw_id_s["per_s"],
        "raw_core_publish_per_s": round(raw_core),
        "moot_accepted_deliveries_per_s": round(moot_accept),
        "moot_confirmed_deliveries_per_s": moot_s["per_s"],
        "moot_handled_and_acked_deliveries_per_s": round(end_to_end),
        "cpu_us_per_delivery_publisher": {
            "raw_js_publish_async": raw_async_s["cpu_us_here"],
            "raw_js_publish_async_msg_id": raw_id_s["cpu_us_here"],
            "moot": moot_s["cpu_us_here"],
        },
        "rounds_per_s": {
            "raw_js_publish_async": raw_async_s["rounds_per_s"],
            "raw_js_publish_async_msg_id": raw_id_s["rounds_per_s"],
            "moot_confirmed": moot_s["rounds_per_s"],
        },
        "ratio_vs_raw_js": round(raw_js / moot_s["per_s"], 2),
        "ratio_vs_raw_js_async": round(raw_async_s["per_s"] / moot_s["per_s"], 2),
        "ratio_vs_raw_js_async_msg_id": round(raw_id_s["per_s"] / moot_s["per_s"], 2),
        "ratio_accepted_vs_raw_js_async": round(raw_async_s["per_s"] / moot_accept, 2),
        "ratio_end_to_end_vs_raw_js_async": round(raw_async_s["per_s"] / end_to_end, 2),
        "ratio_vs_raw_core": round(raw_core / moot_s["per_s"], 2),
        "target": "durable: moot confirmed within 1.5x raw js.publish_async"
        " (ratio_vs_raw_js_async)",
    }


async def main_async(quick: bool) -> dict[str, Any]:
    n_seq, n_par, n_fan = (1000, 3000, 300) if quick else (5000, 20000, 2000)
    with tempfile.TemporaryDirectory() as store:
        server, url = start_server(store)
        children: list[subprocess.Popen[bytes]] = []
        try:
            children.append(start_child([__file__, "--raw-responder", url]))
            worker_args = ["-m", "moot.runtime.nats", "--nats", url, "--agents"]
            children.append(start_child([*worker_args, "bench_nats:setup"]))
            pids = {"raw": children[0].pid, "worker": children[1].pid}
            results = {
                "W1_request_reply": await w1(url, n_seq, n_par, pids),
                "W2_fan_out": await w2(url, n_fan, pids),
            }
        finally:
            for child in children:
                child.terminate()
                child.wait(timeout=15)
            server.terminate()
            server.wait(timeout=10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--raw-responder", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_responder:
        asyncio.run(raw_responder(args.raw_responder))
        return
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    results = asyncio.run(main_async(args.quick))
    path = write("nats", {"quick": args.quick, "versions": versions("nats-py"), **results})
    w1r, w2r = results["W1_request_reply"], results["W2_fan_out"]
    print(
        f"W1 sequential p50: raw {w1r['sequential']['raw']['p50_us']} us,"
        f" moot {w1r['sequential']['moot']['p50_us']} us  (x{w1r['ratio_p50']})"
    )
    print(
        f"W1 100 in flight: raw {w1r['in_flight_100']['raw_req_per_s']}/s,"
        f" moot {w1r['in_flight_100']['moot_req_per_s']}/s  (x{w1r['ratio_throughput']};"
        f" CPU per request x{w1r['ratio_cpu_per_request']})"
    )
    print(
        f"W2 deliveries/s: raw js {w2r['raw_js_publish_per_s']}, raw js async"
        f" {w2r['raw_js_publish_async_per_s']} (with Nats-Msg-Id"
        f" {w2r['raw_js_publish_async_msg_id_per_s']}), raw core"
        f" {w2r['raw_core_publish_per_s']}, moot confirmed"
        f" {w2r['moot_confirmed_deliveries_per_s']} (x{w2r['ratio_vs_raw_js_async']}),"
        f" moot handled+acked {w2r['moot_handled_and_acked_deliveries_per_s']}"
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
