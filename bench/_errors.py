"""The harness's errors: bad configuration, or a missing piece of the environment."""

from __future__ import annotations


class BenchError(Exception):
    """Base of the harness's errors."""


class BenchConfigError(BenchError, ValueError):
    """An unknown scenario or an impossible parameter; nothing was run."""


class BenchEnvironmentError(BenchError):
    """Something a scenario needs is missing (a Docker engine, a sandbox image)."""
