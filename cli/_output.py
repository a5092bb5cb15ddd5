"""How commands talk: rich text for people on stderr/stdout, or one JSON document for scripts."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.table import Table

    from ._errors import ExitCode


class Output:
    """A command's voice. In JSON mode only `result` writes to stdout; progress goes to stderr."""

    def __init__(self, *, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        self.console = Console(stderr=json_mode, highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def say(self, text: str) -> None:
        """A line for people (on stderr in JSON mode, so stdout stays parseable)."""
        self.console.print(text)

    def table(self, table: Table) -> None:
        if not self.json_mode:
            self.console.print(table)

    def result(self, payload: Any) -> None:
        """The command's answer for machines; printed only in JSON mode."""
        if self.json_mode:
            sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
            sys.stdout.flush()

    def error(self, message: str, *, hint: str | None = None, code: ExitCode) -> None:
        if self.json_mode:
            payload = {"error": message, "hint": hint, "exit_code": int(code)}
            sys.stdout.write(json.dumps(payload) + "\n")
            sys.stdout.flush()
        self.err.print(f"[bold red]error:[/] {escape(message)}")
        if hint:
            self.err.print(f"[dim]hint:[/] {escape(hint)}")
