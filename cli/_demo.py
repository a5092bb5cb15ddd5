"""`moot demo`: agents write, run and fix code on the embedded model (or a configured server)."""

from __future__ import annotations

from typing import Any


def add_demo(commands: Any) -> None:
    demo = commands.add_parser("demo", help="watch agents write, run and fix code")
    demo.set_defaults(run=None)
