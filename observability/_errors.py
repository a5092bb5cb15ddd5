"""The error `configure` raises when the SDK it needs is missing or a setting is wrong."""

from __future__ import annotations


class ObservabilityConfigError(ValueError):
    """`configure` cannot do what it was asked: the `moot[otel]` extra is missing, or an
    argument is invalid. (moot.observability sits below moot.runtime, so this subclasses
    ValueError rather than MootError; moot.runtime re-raises nothing of it.)"""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
