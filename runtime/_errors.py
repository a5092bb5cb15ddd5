"""moot's one error tree: every error any moot package raises on purpose is a `MootError`.

This drawing is the only one; each package's `_errors` module points here. A name in parentheses
is a second base: a builtin that callers (AutoGen users especially) already catch, or
`ConfigError`, which every configuration error of every package also is.

    MootError
    ├── ConfigError (ValueError)               an argument or setting that cannot be used (.setting)
    │   ├── LLMConfigError                     models: an llm_config / config_list entry
    │   └── ObservabilityConfigError           observability: configure() without the SDK, ...
    ├── InvalidIdError (ValueError)            an agent or topic id that cannot be used
    ├── RegistrationError (ValueError)         bad or duplicate agent type / subscription
    ├── LifecycleError (RuntimeError)          an illegal state transition ("Cannot start ...")
    ├── SerializationError (TypeError)         a message that cannot cross a wire
    │   ├── UnknownMessageTypeError            the receiving side has no such type registered
    │   └── PayloadTooLargeError               runtime.nats: larger than the broker's max_payload
    ├── DeliveryError                          the message was not handled by its recipient
    │   ├── AgentNotFoundError                 no such agent type is registered
    │   ├── NoHandlerError                     the agent has no handler for the message type
    │   ├── MailboxFullError                   fail-fast send to a full mailbox
    │   ├── AgentStoppedError                  the agent stopped before handling the message
    │   ├── RuntimeStoppedError                send/publish on a runtime that is not running
    │   ├── MessageDroppedError                an interceptor dropped the message
    │   ├── SendCycleError                     a send to an agent already waiting on this chain
    │   ├── NoRespondersError                  runtime.nats: no process listens for the recipient
    │   └── TransportUnavailableError          runtime.nats: the broker is unreachable or refused
    ├── HandlerError                           the handler raised; the original is `__cause__`
    ├── DeadlineExceededError (TimeoutError)   no reply before the deadline
    ├── SupervisionError
    │   └── RestartBudgetExceededError         too many restarts in the period: escalated
    ├── DropMessage                            an interceptor's signal to drop (not an error)
    ├── ModelError                             models: a model call failed (after any retries)
    │   ├── AuthenticationError                401/403: the key is missing, wrong or not allowed
    │   ├── BadRequestError (ValueError)       400/404/422: the request itself is wrong
    │   ├── RateLimitError                     429: too many requests; `retry_after` in seconds
    │   ├── ModelTimeoutError (TimeoutError)   no answer in time (per attempt or overall)
    │   ├── ProviderUnavailableError           5xx, connection refused or reset
    │   ├── MalformedResponseError             the answer is not the JSON the API promises
    │   │   └── InvalidJSONError (ValueError)  model JSON that does not parse (`loads_bounded`)
    │   │       └── JSONDepthError             ... or nests deeper than the limit
    │   ├── ResponseTooLargeError              the answer passed `max_response_bytes`
    │   ├── StreamInterruptedError             the stream broke off, or sent an error event
    │   └── StructuredOutputError (ValueError) an agent's answer missed its response_format
    ├── AgentError                             agents: an agent or chat cannot do what was asked
    │   ├── EventLoopRunningError (RuntimeError)   a sync chat call inside a running loop
    │   ├── AgentConfigError (ConfigError)     a constructor argument or llm_config is unusable
    │   │   ├── ConfigValueTypeError (TypeError)   a value of an unusable type (sync http_client)
    │   │   └── CarryoverTypeError (TypeError)     a carryover that is not a str or a list
    │   ├── ToolRegistrationError (ValueError) a function cannot become a tool
    │   ├── InvalidMessageError (ValueError)   no content, tool calls or function call
    │   ├── NoConversationError (KeyError)     no conversation with the agent asked about
    │   ├── AmbiguousPeerError (ValueError)    last_message() without an agent, several peers
    │   ├── NoMessagesError (ValueError, AssertionError)  generate_reply() with nothing to read
    │   ├── HumanInputError                    the input provider could not give an answer
    │   └── McpError                           an MCP server could not serve tools as asked
    │       ├── McpNotInstalledError (ImportError)  the `mcp` SDK is missing: moot[mcp]
    │       ├── McpConfigError (AgentConfigError)   an McpServer argument is unusable
    │       ├── McpConnectionError             the server could not be started or reached
    │       │   └── McpServerDiedError         the connection ended mid-call; the next reconnects
    │       ├── McpTimeoutError (TimeoutError) no answer within the call or connect timeout
    │       └── McpCallError                   the server answered a protocol error
    ├── GroupChatError (ValueError)            groupchat: cannot be built or run as configured
    │   ├── GroupChatConfigError (ConfigError) a GroupChat / policy / termination setting
    │   ├── AgentNameConflictError             two agents of the group share a name
    │   ├── UndefinedNextAgentError            the next-speaker candidates are not in the group
    │   ├── NoEligibleSpeakerError             nobody may speak next
    │   ├── SpeakerSelectionError              a policy named someone who may not speak now
    │   ├── ChatAlreadyFinishedError           resuming a journaled chat that has finished
    │   └── ChatWaitingForInputError           a journaled chat waits for a human's answer
    ├── ExecutorError                          executors: code could not be run as asked
    │   ├── ExecutorConfigError (ConfigError)  an executor setting (pool size, mode, sizes)
    │   ├── ExecutorClosedError (RuntimeError) the executor is closed or closed mid-job
    │   ├── LeaseTimeoutError (TimeoutError)   no sandbox slot became free before the deadline
    │   ├── SandboxError                       the container or engine failed during a job
    │   ├── UnsafePathError (ValueError)       a file path escapes the work dir or is no path
    │   ├── InvalidCodeError (ValueError)      a block's code is too large or not encodable
    │   ├── DockerUnavailableError             no Docker engine answers
    │   └── ImageError                         the sandbox image is missing or cannot be built
    │       ├── PackageNameError (ConfigError) a package is not a Debian name or profile, or unknown
    │       └── SmokeImportError               a requested package does not import in the image
    ├── JournalError                           journal: a chat cannot be journaled or read back
    │   ├── JournalConfigError (ConfigError)   an unknown store URL, bad limit or cursor
    │   ├── MissingDriverError (ImportError)   aiosqlite / asyncpg is not installed (moot[durable])
    │   ├── StoreError                         the store itself failed (.store: its URL)
    │   │   ├── StoreUnavailableError (ConnectionError)  unreachable at start, or lost mid-chat
    │   │   ├── StoreWriteError                a write failed; nothing of it was kept
    │   │   └── SchemaVersionError             the journal's schema is newer than this moot's
    │   ├── CorruptRecordError                 a row read back is not a record (that chat only)
    │   ├── InvalidRecordError (ValueError)    a record that cannot be journaled
    │   │   ├── RecordTooLargeError            a file, turn or row over its limit (.what)
    │   │   └── TurnOrderError                 not the chat's next turn number
    │   ├── ChatNotFoundError (LookupError)    no chat of that id
    │   ├── ChatExistsError (ValueError)       a chat of that id exists already
    │   ├── ChatFinishedError (RuntimeError)   the chat finished; it takes no more turns
    │   ├── LeaseError                         a chat's lease stands in the way
    │   │   ├── LeaseHeldError                 another owner holds it (one acquirer wins)
    │   │   └── LeaseLostError                 the caller's lease expired or was taken over
    │   └── InputTokenError                    a question to a human cannot be answered
    │       ├── UnknownInputTokenError (LookupError)  no question carries the token
    │       └── InputAlreadyAnsweredError      answered before: an answer applies once
    ├── ModelStoreError                        cli: the embedded model cannot be fetched
    │   └── ModelVerificationError             the fetched bytes are not the pinned model
    ├── ServerError                            server: a request refused, with its HTTP status
    │   ├── UnknownTeamError                   POST /chats names a team setup did not register
    │   └── ServerConfigError (ConfigError)    moot serve cannot start as asked
    ├── CliError                               cli: one clear message and an exit code
    │   ├── UsageError                         an unknown command or impossible parameters
    │   └── MissingError                       Docker, a model or a package is missing
    └── BenchError                             bench: the harness could not run
        ├── BenchConfigError (ConfigError)     an unknown scenario or impossible parameter
        ├── BenchEnvironmentError              a scenario needs a missing engine or image
        └── BenchRunError                      an operation of a scenario failed

`tests/test_errors.py` imports every `moot.*` module and fails on an exception class outside
this tree or missing from this drawing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._ids import AgentId


class MootError(Exception):
    """Base of every error moot raises on purpose."""


class ConfigError(MootError, ValueError):
    """An argument or setting has a value moot cannot use; `setting` names it when known.

    Every package's configuration error (`LLMConfigError`, `AgentConfigError`, ...) is one, so
    one `except ConfigError` (or AutoGen's `except ValueError`) catches them all.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


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


class SendCycleError(DeliveryError):
    """A send to an agent whose own turn is waiting, up the call chain, for this one (A → B →
    A): it could only deadlock, so it is refused at once. `cycle` is the chain, ending in the
    recipient."""

    def __init__(self, message: str, *, agent_id: AgentId, cycle: tuple[AgentId, ...]) -> None:
        super().__init__(message, agent_id=agent_id)
        self.cycle = cycle


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
