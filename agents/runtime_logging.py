"""moot.agents.runtime_logging: AutoGen's `autogen.runtime_logging` — `start()` logging agent
creation, model calls with cost, agent events and function calls to SQLite or a file (and
structlog), `stop()`, `get_connection()`; the logger classes for a log of your own."""

from ._logging import (
    BaseLogger,
    FileLogger,
    SqliteLogger,
    get_connection,
    log_chat_completion,
    log_event,
    log_function_use,
    log_new_agent,
    logging_enabled,
    start,
    stop,
)

__all__ = [
    "BaseLogger",
    "FileLogger",
    "SqliteLogger",
    "get_connection",
    "log_chat_completion",
    "log_event",
    "log_function_use",
    "log_new_agent",
    "logging_enabled",
    "start",
    "stop",
]
