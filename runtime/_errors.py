"""moot's error tree. Every error the runtime raises is a `MootError`; each names its condition.

    MootError
    ├── InvalidIdError (ValueError)            an agent or topic id that cannot be used
    ├── RegistrationError (ValueError)         bad or duplicate agent type / subscription
    ├── LifecycleError (RuntimeError)          an illegal state transition ("Cannot start ...")
    ├── SerializationError (TypeError)         a message that cannot cross a wire
    │   └── UnknownMessageTypeError            the receiving side has no such type registered
    ├── DeliveryError                          the message was not handled by its recipient
    │   ├── AgentNotFoundError                 no such agent type is registered
    │   ├── NoHandlerError                     the agent has no handler for the message type
    │   ├── MailboxFullError                   fail-fast send to a full mailbox
    │   ├── AgentStoppedError                  the agent stopped before handling the message
    │   ├── RuntimeStoppedError                send/publish on a runtime that is not running
    │   └── MessageDroppedError                an interceptor dropped the message
    ├── HandlerError                           the handler raised; the original is `__cause__`
    ├── DeadlineExceededError (TimeoutError)   no reply before the deadline
    └── SupervisionError
        └── RestartBudgetExceededError         too many restarts in the period: escalated

Executors and model clients extend the tree from their own modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._ids import AgentId


class MootError(Exception):
    """Base of every error moot raises on purpose."""


class InvalidIdError(MootError, ValueError):
    """An agent or topic id has an empty or malformed part."""


class RegistrationError(MootError, ValueError):
    """An agent type or subscription cannot be registered (duplicate, bad factory, bad prefix)."""


class LifecycleError(MootError, RuntimeError):
    """A state transition that the object's lifecycle does not allow."""


class SerializationError(MootError, TypeError):
    """A message or envelope cannot be serialized where serialization is required."""


class UnknownMessageTypeError(SerializationError):
    """A serialized message names a type that is not registered on the receiving side."""

    def __init__(self, message: str, *, type_name: str) -> None:
        super().__init__(message)
        self.type_name = type_name


class DeliveryError(MootError):
    """The runtime accepted a message but its recipient did not handle it."""

    def __init__(self, message: str, *, agent_id: AgentId | None = None) -> None:
        super().__init__(message)
        self.agent_id = agent_id


class AgentNotFoundError(DeliveryError):
    """No agent type of that name is registered."""


class NoHandlerError(DeliveryError):
    """The recipient has no handler for the message's type."""


class MailboxFullError(DeliveryError):
    """A fail-fast sender found the recipient's mailbox at capacity."""


class AgentStoppedError(DeliveryError):
    """The recipient stopped (or crashed and was stopped) before handling the message."""


class RuntimeStoppedError(DeliveryError):
    """The runtime is not running, or stopped before the message was handled."""


class MessageDroppedError(DeliveryError):
    """An interceptor dropped the message; `reason` says why."""

    def __init__(self, message: str, *, reason: str, agent_id: AgentId | None = None) -> None:
        super().__init__(message, agent_id=agent_id)
        self.reason = reason


class HandlerError(MootError):
    """The recipient's handler raised; the original exception is `__cause__`."""

    def __init__(self, message: str, *, agent_id: AgentId) -> None:
        super().__init__(message)
        self.agent_id = agent_id


class DeadlineExceededError(MootError, TimeoutError):
    """No reply arrived before the request's deadline; the handler's work was cancelled."""

    def __init__(self, message: str, *, agent_id: AgentId | None = None) -> None:
        super().__init__(message)
        self.agent_id = agent_id


class SupervisionError(MootError):
    """A supervisor gave up on an agent."""


class RestartBudgetExceededError(SupervisionError):
    """An agent failed more often than its supervisor's restart budget allows."""

    def __init__(self, message: str, *, agent_id: AgentId, restarts: int) -> None:
        super().__init__(message)
        self.agent_id = agent_id
        self.restarts = restarts
