"""The error `configure` raises when the SDK it needs is missing or a setting is wrong."""

from __future__ import annotations

# The one import of this room from above it: the error joins moot's one tree. It is safe because
# moot.runtime._errors imports nothing of moot, and this module is only imported lazily (by
# `configure` and the package's `__getattr__`), after moot.observability itself has loaded.
from moot.runtime._errors import ConfigError


class ObservabilityConfigError(ConfigError):
    """`configure` cannot do what it was asked: the `moot[otel]` extra is missing, or an
    argument is invalid (`setting` names it)."""
