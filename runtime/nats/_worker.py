"""`python -m moot.runtime.nats`: a worker process that hosts agents over NATS.

    python -m moot.runtime.nats --nats nats://127.0.0.1:4222 --agents myapp.agents:setup

`setup` is a callable that takes the `Runtime` and registers agent types, message types and
subscriptions (the same function the client calls, so both sides agree on names). The worker
prints `moot-worker ready <node>` on stdout once it serves, logs to stderr, and stops gracefully
on SIGTERM or SIGINT (mailboxes drain, unfinished tells go back to the stream for other workers).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from typing import TYPE_CHECKING

import structlog

from moot.observability import add_trace_ids, configure_from_env
from moot.runtime import ConfigError, Runtime

from ._transport import NatsTransport

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

READY = "moot-worker ready"


def load_setup(spec: str) -> Callable[[Runtime], object]:
    """Import `module:attr` and return the callable it names.

    Raises:
        ConfigError: the spec is not `module:attr` or does not name a callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--agents wants 'module:callable', got {spec!r}", setting="--agents")
    target = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{spec} is not callable", setting="--agents")
    setup: Callable[[Runtime], object] = target
    return setup


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m moot.runtime.nats", description=__doc__)
    parser.add_argument("--nats", required=True, action="append", help="server URL (repeatable)")
    parser.add_argument("--agents", required=True, help="module:setup that registers agents")
    parser.add_argument("--prefix", default="moot", help="subject, stream and bucket prefix")
    parser.add_argument("--name", default=None, help="connection name shown by the server")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="seconds between beats")
    parser.add_argument("--member-ttl", type=float, default=5.0, help="silence that means dead")
    parser.add_argument("--ack-wait", type=float, default=30.0, help="JetStream ack wait (s)")
    parser.add_argument("--max-inflight", type=int, default=256, help="unacked tells at most")
    parser.add_argument("--reconnect-wait", type=float, default=0.5, help="reconnect backoff")
    parser.add_argument("--stop-timeout", type=float, default=5.0, help="graceful drain (s)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run one worker until SIGTERM/SIGINT."""
    transport = NatsTransport(
        args.nats,
        prefix=args.prefix,
        name=args.name,
        heartbeat=args.heartbeat,
        member_ttl=args.member_ttl,
        ack_wait=args.ack_wait,
        max_inflight=args.max_inflight,
        reconnect_wait=args.reconnect_wait,
    )
    runtime = Runtime(transport=transport, stop_timeout=args.stop_timeout)
    load_setup(args.agents)(runtime)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with runtime:
        print(f"{READY} {transport.node}", flush=True)  # noqa: T201 (the readiness line)
        await stop.wait()


def run_worker(argv: Sequence[str] | None = None) -> None:
    """Entry point: parse arguments, log to stderr, serve."""
    args = parse_args(argv)
    processors = list(structlog.get_config()["processors"])
    structlog.configure(
        processors=[*processors[:-1], add_trace_ids, processors[-1]],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    # OTEL_* in the environment: export this worker's spans too (see moot.observability).
    telemetry = configure_from_env(service_name=f"moot-worker {args.name or ''}".strip())
    try:
        asyncio.run(serve(args))
    finally:
        if telemetry is not None:
            telemetry.shutdown()
