"""moot.runtime: the actor core: ids, envelopes, bounded mailboxes, the runtime (routing,
supervision, passivation, deadlines) and the transport seam. NATS lives in `moot.runtime.nats`."""

from ._agent import Agent, AgentContext, AgentFactory, handler
from ._clock import Clock, TimerHandle
from ._deadletters import DeadLetter, DeadLetterLog, DeadLetterReason, DeadLetterSink
from ._envelope import Envelope, Handler, Kind
from ._errors import (
    AgentNotFoundError,
    AgentStoppedError,
    ConfigError,
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
    SendCycleError,
    SerializationError,
    SupervisionError,
    UnknownMessageTypeError,
)
from ._gc import GcPolicy
from ._ids import AgentId, TopicId
from ._interceptors import DropMessage, Interceptor
from ._mailbox import Mailbox, MailboxStatistics
from ._runtime import AgentType, Runtime, RuntimeState, RuntimeStatistics
from ._serialization import MessageCodec
from ._state import InMemoryStateStore, StateStore
from ._subscriptions import PrefixSubscription, Subscription, TypeSubscription
from ._supervision import (
    Directive,
    Escalate,
    Restart,
    Resume,
    Stop,
    SupervisorStrategy,
)
from ._transport import InProcessTransport, Transport, TransportHost

__all__ = [
    "Agent",
    "AgentContext",
    "AgentFactory",
    "AgentId",
    "AgentNotFoundError",
    "AgentStoppedError",
    "AgentType",
    "Clock",
    "ConfigError",
    "DeadLetter",
    "DeadLetterLog",
    "DeadLetterReason",
    "DeadLetterSink",
    "DeadlineExceededError",
    "DeliveryError",
    "Directive",
    "DropMessage",
    "Envelope",
    "Escalate",
    "GcPolicy",
    "Handler",
    "HandlerError",
    "InMemoryStateStore",
    "InProcessTransport",
    "Interceptor",
    "InvalidIdError",
    "Kind",
    "LifecycleError",
    "Mailbox",
    "MailboxFullError",
    "MailboxStatistics",
    "MessageCodec",
    "MessageDroppedError",
    "MootError",
    "NoHandlerError",
    "PrefixSubscription",
    "RegistrationError",
    "Restart",
    "RestartBudgetExceededError",
    "Resume",
    "Runtime",
    "RuntimeState",
    "RuntimeStatistics",
    "RuntimeStoppedError",
    "SendCycleError",
    "SerializationError",
    "StateStore",
    "Stop",
    "Subscription",
    "SupervisionError",
    "SupervisorStrategy",
    "TimerHandle",
    "TopicId",
    "Transport",
    "TransportHost",
    "TypeSubscription",
    "UnknownMessageTypeError",
    "handler",
]
