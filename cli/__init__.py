"""moot.cli: the `moot` command line (demo, bench, doctor, image, model, worker)."""

from ._main import main

__all__ = ["main"]
