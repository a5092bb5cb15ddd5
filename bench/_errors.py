"""The harness's errors: bad configuration, a missing piece of the environment, a failed operation.

`BenchError` is a `MootError`; the whole tree is drawn once, in `moot.runtime._errors`.
"""

from __future__ import annotations

from moot.runtime import ConfigError, MootError


class BenchError(MootError):
    """Base of the harness's errors."""


class BenchConfigError(BenchError, ConfigError):
    """An unknown scenario, an impossible parameter or an unreadable results file; nothing ran."""


class BenchEnvironmentError(BenchError):
    """Something a scenario needs is missing (a Docker engine, a sandbox image)."""


class BenchRunError(BenchError):
    """One operation of a scenario failed (a sandbox run exited non-zero, ...)."""
