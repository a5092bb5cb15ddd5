"""The executors' errors: `ExecutorError` and its branch; the whole tree is drawn once, in
`moot.runtime._errors`.
"""

from __future__ import annotations

from moot.runtime import ConfigError, MootError


class ExecutorError(MootError):
    """Base of every error an executor raises on purpose."""


class ExecutorConfigError(ExecutorError, ConfigError):
    """An executor setting (pool size, mode, a size such as "512m") has an unusable value."""


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
    """A file path (from `# filename:` or the work dir) would land outside the work dir, or is
    no valid path (a name over 255 bytes, a path too long, not encodable)."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class InvalidCodeError(ExecutorError, ValueError):
    """A block's code cannot be run as given (too large, or not encodable as UTF-8); nothing ran."""

    def __init__(self, message: str, *, reason: str, size: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.size = size


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


class PackageNameError(ImageError, ConfigError):
    """A requested package is not a valid Debian name or profile, or no Debian package has it.

    Raised before anything is built.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message, image="")
        self.name = name
        self.setting = "packages"


class SmokeImportError(ImageError):
    """The image was built, but a requested package's Python module does not import in it."""

    def __init__(self, message: str, *, image: str, package: str, module: str) -> None:
        super().__init__(message, image=image)
        self.package = package
        self.module = module
