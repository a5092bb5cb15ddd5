"""The model client's errors; each `ModelError` carries model, base_url and status.

The whole tree is drawn once, in `moot.runtime._errors`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from moot.runtime import ConfigError, MootError


class LLMConfigError(ConfigError):
    """An `llm_config` or `config_list` entry is missing a field or has a wrong value."""


class ModelError(MootError):
    """A model call failed; `retryable` says if a retry may help, `retry_after` when (seconds)."""

    retryable_by_default: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        base_url: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.base_url = base_url
        self.status = status
        self.retryable = self.retryable_by_default if retryable is None else retryable
        self.retry_after = retry_after


class AuthenticationError(ModelError):
    """The provider refused the credentials (401) or the permission (403)."""


class BadRequestError(ModelError, ValueError):
    """The provider rejected the request itself (400, 404, 422); retrying cannot help."""


class RateLimitError(ModelError):
    """The provider answered 429; `retry_after` is its hint in seconds, when it gave one."""

    retryable_by_default = True


class ModelTimeoutError(ModelError, TimeoutError):
    """No answer arrived within the attempt timeout or the call's overall deadline."""

    retryable_by_default = True


class ProviderUnavailableError(ModelError):
    """The provider failed on its side (5xx) or could not be reached at all."""

    retryable_by_default = True


class MalformedResponseError(ModelError):
    """The provider answered, but not with the chat-completion JSON the API defines."""


class StructuredOutputError(ModelError, ValueError):
    """An agent's answer still did not match its `response_format` after the allowed repairs;
    `errors` lists what was wrong with each attempt, in order."""

    def __init__(self, message: str, *, errors: tuple[str, ...] = (), **context: Any) -> None:
        super().__init__(message, **context)
        self.errors = errors


class StreamInterruptedError(ModelError):
    """A streamed answer stopped before its end; retried only if no token was delivered yet."""


class InvalidJSONError(MalformedResponseError, ValueError):
    """Model output that should be JSON (tool arguments, a selector's answer) does not parse."""


class JSONDepthError(InvalidJSONError):
    """Model JSON nests deeper than the limit; refused before parsing (no `RecursionError`)."""

    def __init__(self, message: str, *, max_depth: int, **context: Any) -> None:
        super().__init__(message, **context)
        self.max_depth = max_depth


class ResponseTooLargeError(ModelError):
    """The answer (whole or streamed) passed the client's byte cap; `limit` is the cap in bytes."""

    def __init__(self, message: str, *, limit: int, **context: Any) -> None:
        super().__init__(message, **context)
        self.limit = limit


def error_for_status(
    status: int,
    message: str,
    *,
    code: str | None = None,
    retry_after: float | None = None,
    model: str | None = None,
    base_url: str | None = None,
) -> ModelError:
    """The typed error for an HTTP status (or an in-stream error naming one), as OpenAI means it."""
    kind: type[ModelError]
    retryable: bool | None = None
    if status in (401, 403):
        kind = AuthenticationError
    elif status == 429:
        kind = RateLimitError
        if code == "insufficient_quota":
            retryable = False
    elif status == 408:
        kind = ModelTimeoutError
    elif status == 409 or status >= 500:
        kind = ProviderUnavailableError
    else:
        kind = BadRequestError
    return kind(
        message,
        model=model,
        base_url=base_url,
        status=status,
        retryable=retryable,
        retry_after=retry_after,
    )
