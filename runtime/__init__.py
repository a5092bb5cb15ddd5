"""moot.runtime: the actor runtime (ids, mailboxes, routing, supervision, transports)."""

from ._errors import (
    AgentNotFoundError,
    AgentStoppedError,
    DeadlineExceededError,
    DeliveryError,
    HandlerError,
    InvalidIdError,
    LifecycleError,
    MailboxFullError,
    MessageDroppedError,
    MootError,
    NoHandlerError,
    RegistrationError,
    RestartBudgetExceededError,
    RuntimeStoppedError,
    SerializationError,
    SupervisionError,
    UnknownMessageTypeError,
)
from ._ids import AgentId, TopicId

__all__ = [
    "AgentId",
    "AgentNotFoundError",
    "AgentStoppedError",
    "DeadlineExceededError",
    "DeliveryError",
    "HandlerError",
    "InvalidIdError",
    "LifecycleError",
    "MailboxFullError",
    "MessageDroppedError",
    "MootError",
    "NoHandlerError",
    "RegistrationError",
    "RestartBudgetExceededError",
    "RuntimeStoppedError",
    "SerializationError",
    "SupervisionError",
    "TopicId",
    "UnknownMessageTypeError",
]
