"""What moot's OpenTelemetry instrumentation costs: W1 (runtime request/reply) and W3 (C
concurrent round-robin group chats, model stub) in four modes, measured in the same run.

    python benchmarks/bench_otel.py [--quick] [--rounds 5] [--chats 1000] [--n 20000]

Modes (each measurement is a fresh child process; rounds alternate the modes so each sees the
same machine load):

- `bypass`: `MOOT_OTEL_BYPASS=1`: moot's switch can never turn on, whatever is installed;
- `off`: the default, API only, no SDK configured: no span is started;
- `on`: `configure()`'s default: the SDK with moot's `ProcessSpanProcessor` (the OTLP/HTTP
  exporter runs in a child process) sending to a loopback receiver in the benchmark's parent
  process (never the measured one), flushed before the clock stops;
- `on_thread`: as `on` with `MOOT_OTEL_OFFLOAD=0`: the SDK's `BatchSpanProcessor`, exporting
  from a thread of the measured process (queue sized so no span is dropped);
- `lean`: as `on` with `MOOT_OTEL_LEAN=1`: moot's lean tracer provider (spans are small
  records in this process; the SDK's `ReadableSpan`s are built only in the exporter child);
- `on_sampled`: as `on` with `OTEL_TRACES_SAMPLER=parentbased_traceidratio` at 0.1.

With no SDK, `off` and `bypass` run the same code: every call site checks one flag and skips
its span (the runtime checks one per envelope). So the default's own cost is measured directly
as well (`micro_ns_per_call`): a turn's call sites with the flag checks, against an empty call,
as a share of W3's CPU per turn — what compiling the instrumentation out would save.

Reported: the median of each figure per mode, and the ratios off/bypass and on/off. Writes
`benchmarks/results/otel.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import versions, write

MODES = ("bypass", "off", "on", "lean", "on_thread", "on_sampled")
SAMPLE_RATIO = "0.1"


# --------------------------------------------------------------------------- child side


async def child_w1(n: int) -> dict[str, Any]:
    from bench_runtime import w1

    result = await w1(n, 3)
    return {"external_us": result["moot_external_us"], "agent_us": result["moot_agent_to_agent_us"]}


async def child_w3(chats: int, latency: float) -> dict[str, Any]:
    import gc

    from bench_groupchat import StubClient

    from moot.agents import AssistantAgent
    from moot.groupchat import GroupChat, GroupChatManager
    from moot.runtime import Runtime

    turns, agents = 10, 3
    stub = StubClient(latency)
    team = [
        AssistantAgent(f"assistant_{i}", system_message="Keep answers short.", model_client=stub)
        for i in range(agents)
    ]
    group = GroupChat(
        team, messages=[], max_round=turns + 1, speaker_selection_method="round_robin"
    )
    manager = GroupChatManager(group, silent=True, store=None)  # W3 as bench_groupchat: no journal
    tasks = [f"Chat {i}: please discuss the plan." for i in range(chats)]
    async with Runtime() as runtime:
        gc.collect()
        cpu0 = time.process_time()
        start = time.perf_counter()
        for task in tasks:
            stub.last[task] = start
        await asyncio.gather(
            *(manager.a_run(task, runtime=runtime, chat_id=f"c{i}") for i, task in enumerate(tasks))
        )
        flush_s = 0.0
        telemetry = TELEMETRY.get("t")
        if telemetry is not None:  # the exporter's work counts: flush before the clock stops
            flushed = time.perf_counter()
            telemetry.force_flush()
            flush_s = time.perf_counter() - flushed
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
    ok = stub.calls == chats * turns
    return {
        "ok": ok,
        "wall_s": wall,
        "cpu_ms_per_turn": cpu / (chats * turns) * 1000,
        "flush_s": flush_s,
    }


TELEMETRY: dict[str, Any] = {}


def child_micro(traced: bool) -> dict[str, Any]:
    """Nanoseconds per call of what a group-chat turn runs of the instrumentation (a turn span
    and a speaker-selection span, entered and left), and of a chat's workflow span: the
    default's cost per turn without the machine's noise around it (and, `traced`, a span's
    cost with a provider installed, the offload buffer's append included)."""
    import timeit

    from moot import observability

    switch = observability.SWITCH

    def turn() -> None:  # what a turn runs: the two call sites' checks (see _manager, _participant)
        if switch.active:
            with observability.speaker_selection("RoundRobin", ("a", "b"), "c1") as selecting:
                selecting.chosen("a")
        if switch.active:
            with observability.agent_turn("a", "c1"):
                pass

    def chat() -> None:
        with observability.workflow("group_chat", "c1", "manager"):
            pass

    def nothing() -> None:
        pass

    n = 10_000 if traced else 200_000
    best = {
        name: min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e9
        for name, fn in (("turn", turn), ("chat", chat), ("empty_call", nothing))
    }
    return {
        "turn_ns": best["turn"] - best["empty_call"],
        "chat_ns": best["chat"] - best["empty_call"],
    }


def child(args: argparse.Namespace) -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.mode.startswith(("on", "lean")):
        from moot import observability

        TELEMETRY["t"] = observability.configure(service_name="bench", exporter="otlp")
    if args.workload == "micro":
        result = child_micro(args.mode != "bypass" and args.mode != "off")
    elif args.workload == "w1":
        result = asyncio.run(child_w1(args.n))
    else:
        result = asyncio.run(child_w3(args.chats, args.latency_ms / 1000))
    if "t" in TELEMETRY:
        TELEMETRY["t"].shutdown()
    if args.workload == "w3":  # the exporter child's CPU, start-up included (0 in-thread)
        import resource

        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["exporter_cpu_ms_per_turn"] = (
            (used.ru_utime + used.ru_stime) / (args.chats * 10) * 1000
        )
    print(json.dumps(result))


# --------------------------------------------------------------------------- parent side


class Receiver:
    """A loopback OTLP/HTTP endpoint that counts spans (decoded) and answers 200."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans = 0
        lock = threading.Lock()
        receiver = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    count = sum(
                        len(scope.spans)
                        for rs in request.resource_spans
                        for scope in rs.scope_spans
                    )
                    with lock:
                        receiver.spans += count
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run_child(mode: str, workload: str, args: argparse.Namespace, url: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MOOT_OTEL"))}
    if mode == "bypass":
        env["MOOT_OTEL_BYPASS"] = "1"
    if mode == "on_sampled":  # the standard sampler variables, read by the SDK
        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        env["OTEL_TRACES_SAMPLER_ARG"] = SAMPLE_RATIO
    if mode == "on_thread":
        env["MOOT_OTEL_OFFLOAD"] = "0"
    if mode == "lean":
        env["MOOT_OTEL_LEAN"] = "1"
    if mode.startswith(("on", "lean")):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
        env["OTEL_BSP_MAX_QUEUE_SIZE"] = "100000"  # no span dropped: all of them are exported
        env["OTEL_METRIC_EXPORT_INTERVAL"] = "60000"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        *("--child", mode, "--workload", workload),
        *("--n", str(args.n), "--chats", str(args.chats), "--latency-ms", str(args.latency_ms)),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=600
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise RuntimeError(f"{mode} {workload} failed: {done.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, small sizes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20000, help="W1 round trips per repeat")
    parser.add_argument("--chats", type=int, default=1000, help="W3 concurrent chats (C)")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--child", choices=MODES, dest="mode", help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=("w1", "w3", "micro"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode is not None:
        child(args)
        return 0
    if args.quick:
        args.rounds, args.n, args.chats = 2, 5000, 100
    receiver = Receiver()
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {m: [] for m in MODES} for w in ("w1", "w3")
    }
    exported: list[tuple[str, int]] = []
    for round_ in range(args.rounds):
        for workload in ("w1", "w3"):
            order = MODES if round_ % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                before = receiver.spans
                samples[workload][mode].append(run_child(mode, workload, args, receiver.url))
                if mode.startswith(("on", "lean")) and workload == "w3":
                    exported.append((mode, receiver.spans - before))
                print(f"round {round_ + 1} {workload} {mode}: {samples[workload][mode][-1]}")

    def med(workload: str, mode: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[workload][mode])

    figures: dict[str, Any] = {}
    for workload, keys in (
        ("w1", ("external_us", "agent_us")),
        ("w3", ("wall_s", "cpu_ms_per_turn", "exporter_cpu_ms_per_turn")),
    ):
        rows: dict[str, Any] = {m: {k: round(med(workload, m, k), 4) for k in keys} for m in MODES}
        for key in keys:
            if key == "exporter_cpu_ms_per_turn":
                continue
            for top, bottom in (
                ("off", "bypass"),
                ("on", "off"),
                ("lean", "off"),
                ("lean", "on"),
                ("on_thread", "off"),
                ("on", "on_thread"),
                ("on_sampled", "off"),
            ):
                rows[f"{key}_ratio_{top}_over_{bottom}"] = round(
                    med(workload, top, key) / med(workload, bottom, key), 4
                )
        figures[workload] = rows
    figures["micro_ns_per_call"] = {
        mode: run_child(mode, "micro", args, receiver.url)
        for mode in ("bypass", "off", "on", "lean")
    }
    w3_ms_per_turn = med("w3", "bypass", "cpu_ms_per_turn")
    micro = figures["micro_ns_per_call"]["off"]
    # Per turn: the two call sites, plus the workflow span's share (one per 10-turn chat).
    per_turn_ns = micro["turn_ns"] + micro["chat_ns"] / 10
    figures["micro_ns_per_call"]["off_cost_share_of_w3_cpu_per_turn"] = round(
        per_turn_ns / (w3_ms_per_turn * 1e6), 5
    )
    figures["w3"]["spans_exported_per_on_run"] = exported
    figures["w3"]["flush_s_on"] = round(med("w3", "on", "flush_s"), 4)
    figures["w3"]["flush_s_lean"] = round(med("w3", "lean", "flush_s"), 4)
    payload = {
        "workloads": {
            "w1": f"runtime.send request/reply, {args.n} round trips x 3, median us per trip",
            "w3": f"C={args.chats} concurrent round-robin group chats, 3 agents x 10 turns, "
            f"stub L={args.latency_ms} ms",
        },
        "rounds": args.rounds,
        "modes": {
            "bypass": "MOOT_OTEL_BYPASS=1: no instrumentation call at all",
            "off": "default: opentelemetry-api only, no SDK",
            "on": "configure() default: SDK + ProcessSpanProcessor (OTLP/HTTP exporter in a child "
            "process) to a loopback receiver in another process, flushed in wall",
            "lean": "as on with MOOT_OTEL_LEAN=1: moot's lean tracer provider, span records "
            "made into SDK spans only in the exporter child",
            "on_thread": "as on with MOOT_OTEL_OFFLOAD=0: SDK BatchSpanProcessor in a thread",
            "on_sampled": "as on, with OTEL_TRACES_SAMPLER=parentbased_traceidratio at "
            + SAMPLE_RATIO
            + " (whole chats kept or dropped)",
        },
        "targets": {"off_over_bypass": 1.01, "w3_wall_on_over_off": 1.05},
        "results": figures,
        "samples": samples,
        "versions": versions(),
    }
    path = write("otel", payload)
    print(json.dumps(figures, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
