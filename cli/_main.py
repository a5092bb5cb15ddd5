"""The `moot` entry point. Subcommands are added by their own modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `moot` command line; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="moot", description="moot: actors for multi-agent LLMs")
    parser.add_subparsers(dest="command")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stdout)
        return 2
    return 0
