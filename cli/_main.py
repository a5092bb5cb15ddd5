"""The `moot` entry point: parse the command line, run one command, turn failures into exit codes.

Each command is a function `(args, out) -> ExitCode` in its own module. A command reports a
failure by raising `CliError` (one message, a hint, an exit code); anything else escaping a command
is a bug, shown as one line (the traceback only with `--debug`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

import structlog

from moot.observability import add_trace_ids

from ._commands import CliParser, add_commands
from ._errors import CliError, ExitCode, UsageError
from ._output import Output

if TYPE_CHECKING:
    from collections.abc import Sequence

EPILOG = """\
exit codes:
  0  done          1  the work failed (a run broke, the model did not finish)
  2  bad input     3  something needed is missing (Docker engine, model, package)
  130 interrupted

examples:
  moot doctor                      what is installed, what is missing, how to fix it
  moot demo                        agents write, run and fix code on the embedded model
  moot bench chats --concurrency 1,8,32 --out results/
  moot bench runtime executor --quick --json
"""


_GLOBAL_FLAGS = ("--json", "--debug")


def build_parser() -> argparse.ArgumentParser:
    """The whole `moot` command line."""
    parser = CliParser(
        prog="moot",
        description="moot: an asyncio actor runtime for multi-agent LLM programs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout (for scripts)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser))
    return parser


def _quiet_logs(debug: bool) -> None:
    """Library events (pool started, image built) go to stderr, and only warnings unless --debug;
    inside a span each line carries its trace and span ids."""
    processors = list(structlog.get_config()["processors"])
    structlog.configure(
        processors=[*processors[:-1], add_trace_ids, processors[-1]],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.WARNING
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `moot` command line; returns the process exit code.

    The log configuration is the caller's again afterwards (tests call `main` in-process).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["worker"]:  # the worker has its own options (and --help): hand them over
        from moot.runtime.nats import run_worker

        run_worker(args[1:])
        return 0
    saved = structlog.get_config()
    try:
        return _main(argv)
    finally:
        structlog.configure(**saved)


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    out = Output(json_mode="--json" in arguments)
    debug = "--debug" in arguments
    _quiet_logs(debug)
    try:
        parser = build_parser()
        if not arguments:
            parser.print_help(sys.stdout)
            return int(ExitCode.USAGE)
        # The global flags work anywhere on the line: `moot bench chats --json` too.
        rest = [a for a in arguments if a not in _GLOBAL_FLAGS]
        args = parser.parse_args([*(f for f in _GLOBAL_FLAGS if f in arguments), *rest])
        out = Output(json_mode=args.json)
        run = getattr(args, "run", None)
        if run is None:
            raise UsageError(
                f"`moot {args.command}` needs an action", hint=f"see `moot {args.command} --help`"
            )
        return int(run(args, out))
    except SystemExit as exc:  # --help, and argparse's own exits
        return int(exc.code) if isinstance(exc.code, int) else int(ExitCode.OK)
    except CliError as exc:
        out.error(str(exc), hint=exc.hint, code=exc.code)
        return int(exc.code)
    except KeyboardInterrupt:
        out.error("interrupted", code=ExitCode.INTERRUPTED)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        if debug:
            raise
        out.error(
            f"unexpected {type(exc).__name__}: {exc}",
            hint="this is a bug in moot; run again with --debug for the traceback",
            code=ExitCode.FAILED,
        )
        return int(ExitCode.FAILED)
