"""Serve a scripted model that always answers one text: `python -m moot.testing [--reply TEXT]`.

Prints its base URL on the first line, then runs until killed; for demos and benchmarks that want
the server in another process.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from ._script import Reply
from ._server import ScriptedModelServer


async def _serve(reply: Reply) -> None:
    async with ScriptedModelServer(default=reply) as server:
        sys.stdout.write(f"{server.base_url}\n")
        sys.stdout.flush()
        await anyio.sleep_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m moot.testing", description=__doc__)
    parser.add_argument("--reply", default="ok", help="the content of every answer")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    anyio.run(_serve, Reply(args.reply, latency=args.latency))


if __name__ == "__main__":
    main()
