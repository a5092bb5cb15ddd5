"""What the `moot` command exits with, and the one error type its commands raise to get there.

`CliError` is a `MootError`; the whole tree is drawn once, in `moot.runtime._errors`.
"""

from __future__ import annotations

import enum

from moot.runtime import MootError


class ExitCode(enum.IntEnum):
    """Exit codes scripts can rely on; `moot --help` lists them."""

    OK = 0  # the command did what it was asked
    FAILED = 1  # the work ran and failed (a model that did not finish, a broken run)
    USAGE = 2  # bad input: unknown command or scenario, impossible parameters
    MISSING = 3  # something the command needs is not there (Docker engine, model, package)
    INTERRUPTED = 130  # Ctrl-C


class CliError(MootError):
    """A failure the command line reports as one clear message (and a hint) with an exit code."""

    def __init__(
        self, message: str, *, code: ExitCode = ExitCode.FAILED, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint


class UsageError(CliError):
    """The user asked for something impossible or unknown."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, code=ExitCode.USAGE, hint=hint)


class MissingError(CliError):
    """A piece of the environment the command needs is missing."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, code=ExitCode.MISSING, hint=hint)
