"""The executors' branch of moot's error tree.

MootError
└── ExecutorError                           code could not be run as asked
    ├── ExecutorClosedError (RuntimeError)  the executor is closed or closed mid-job
    ├── LeaseTimeoutError (TimeoutError)    no sandbox slot became free before the deadline
    ├── SandboxError                        the container or engine failed during a job
    ├── UnsafePathError (ValueError)        a `# filename:` path escapes the work dir
    ├── DockerUnavailableError              no Docker engine answers
    └── ImageError                          the sandbox image is missing or cannot be built
"""

from __future__ import annotations

from moot.runtime import MootError


class ExecutorError(MootError):
    """Base of every error an executor raises on purpose."""


class ExecutorClosedError(ExecutorError, RuntimeError):
    """The executor was closed before, or while, the job ran."""


class LeaseTimeoutError(ExecutorError, TimeoutError):
    """Every sandbox slot stayed leased until the lease deadline passed."""

    def __init__(self, message: str, *, timeout: float, pool_size: int) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.pool_size = pool_size


class SandboxError(ExecutorError):
    """The sandbox (container or engine) failed while running a job; the slot is replaced."""

    def __init__(self, message: str, *, container_id: str | None = None, reason: str) -> None:
        super().__init__(message)
        self.container_id = container_id
        self.reason = reason


class UnsafePathError(ExecutorError, ValueError):
    """A file path (from `# filename:` or the work dir) would land outside the work dir."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class DockerUnavailableError(ExecutorError):
    """No Docker engine answered; the message says how to start one or opt out of Docker."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class ImageError(ExecutorError):
    """The sandbox image does not exist or could not be built."""

    def __init__(self, message: str, *, image: str) -> None:
        super().__init__(message)
        self.image = image
