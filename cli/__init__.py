"""moot.cli: the `moot` command line (demo, bench, doctor, image, model, worker)."""

from ._errors import CliError, ExitCode
from ._main import main

__all__ = [
    "CliError",
    "ExitCode",
    "main",
]
