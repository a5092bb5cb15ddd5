"""`moot serve`: chats behind an HTTP API and a console page (see docs/server.md)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import anyio

from ._errors import ExitCode, MissingError, UsageError

if TYPE_CHECKING:
    from ._output import Output


def add_serve(commands: Any) -> None:
    """Add `moot serve` to the subparsers."""
    serve = commands.add_parser(
        "serve",
        help="serve chats over HTTP: a JSON API, event streams and a console",
        description="Serve the teams that --agents registers: a JSON API with Server-Sent"
        " Events, human input and approvals, and a console page at /. Binds 127.0.0.1 by"
        " default; every request needs the bearer token printed at start (or --token /"
        " $MOOT_SERVE_TOKEN).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--agents",
        required=True,
        metavar="MODULE:FUNC",
        help="a function that registers teams: setup(teams)",
    )
    serve.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="the chat journal (sqlite:///..., postgresql://..., memory://)",
    )
    serve.add_argument(
        "--nats",
        default=None,
        metavar="URL",
        help="run the chats on `moot worker` processes on this NATS server (they host the"
        " teams' agents) instead of in this process",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--token", default=None, help="the admin token (default: generated)")
    serve.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace, out: Output) -> ExitCode:
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    try:
        from moot.server import ServerConfigError, serve
    except ImportError as exc:
        raise MissingError(
            f"moot serve needs the server extra ({exc.name} is missing)",
            hint="pip install 'moot[server]'",
        ) from exc
    try:
        anyio.run(
            lambda: serve(
                args.agents,
                store_url=args.store,
                host=args.host,
                port=args.port,
                token=args.token,
                nats=args.nats,
            )
        )
    except ServerConfigError as exc:
        raise UsageError(str(exc)) from exc
    return ExitCode.OK
