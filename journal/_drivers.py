"""Driver packages are optional (`moot[durable]`): import them when a store first needs one."""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import MissingDriverError


def import_driver(package: str) -> Any:
    """The driver module, imported now.

    Raises:
        MissingDriverError: it is not installed; the message says how to install it.
    """
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise MissingDriverError(
            f"This journal store needs the {package!r} package: pip install 'moot[durable]'.",
            package=package,
        ) from exc
