"""Runtime logging (AutoGen's `autogen.runtime_logging`): agent creation, model calls with their
cost, agent events and function calls, written to SQLite or to a JSON-lines file, and always
to structlog.

One logger is active per process, between `start()` and `stop()`. The SQLite tables and
columns, and the file records' keys, are AutoGen's, so queries written for its logs read ours.
Secrets (`api_key`, `http_client`, ...) are left out of the recorded arguments.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog

from ._errors import AgentConfigError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Mapping

log = structlog.get_logger("moot.agents.runtime_logging")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS chat_completions (
        id INTEGER PRIMARY KEY, invocation_id TEXT, client_id INTEGER, wrapper_id INTEGER,
        session_id TEXT, source_name TEXT, request TEXT, response TEXT, is_cached INTEGER,
        cost REAL, start_time DATETIME DEFAULT CURRENT_TIMESTAMP,
        end_time DATETIME DEFAULT CURRENT_TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS agents (
        id INTEGER PRIMARY KEY, agent_id INTEGER, wrapper_id INTEGER, session_id TEXT,
        name TEXT, class TEXT, init_args TEXT, timestamp DATETIME DEFAULT CURRENT_TIMESTAMP,
        UNIQUE(agent_id, session_id))""",
    """CREATE TABLE IF NOT EXISTS oai_wrappers (
        id INTEGER PRIMARY KEY, wrapper_id INTEGER, session_id TEXT, init_args TEXT,
        timestamp DATETIME DEFAULT CURRENT_TIMESTAMP, UNIQUE(wrapper_id, session_id))""",
    """CREATE TABLE IF NOT EXISTS oai_clients (
        id INTEGER PRIMARY KEY, client_id INTEGER, wrapper_id INTEGER, session_id TEXT,
        class TEXT, init_args TEXT, timestamp DATETIME DEFAULT CURRENT_TIMESTAMP,
        UNIQUE(client_id, session_id))""",
    """CREATE TABLE IF NOT EXISTS events (
        event_name TEXT, source_id INTEGER, source_name TEXT, agent_module TEXT DEFAULT NULL,
        agent_class_name TEXT DEFAULT NULL, id INTEGER PRIMARY KEY, json_state TEXT,
        timestamp DATETIME DEFAULT CURRENT_TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS function_calls (
        source_id INTEGER, source_name TEXT, function_name TEXT, args TEXT DEFAULT NULL,
        returns TEXT DEFAULT NULL, timestamp DATETIME DEFAULT CURRENT_TIMESTAMP)""",
    "CREATE TABLE IF NOT EXISTS version (id INTEGER PRIMARY KEY, version_number INTEGER)",
)
_SECRET_KEYS = frozenset({"api_key", "azure_ad_token", "http_client", "default_headers"})


def _json(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def redact(value: Any) -> Any:
    """`value` with secret entries (`api_key`, `http_client`, ...) left out, at any depth."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items() if k not in _SECRET_KEYS}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _name(source: Any) -> str:
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else str(source)


class BaseLogger:
    """A runtime log: `start()` opens it and returns the session id, `stop()` closes it; the
    `log_*` methods record what AutoGen records. Subclasses implement `_write`."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})
        self.session_id = str(uuid.uuid4())

    def start(self) -> str:
        """Open the log; returns the session id (a UUID string)."""
        return self.session_id

    def stop(self) -> None:
        """Close the log."""

    def get_connection(self) -> sqlite3.Connection | None:
        """The SQLite connection, for a SQLite log (None otherwise)."""
        return None

    def _write(self, table: str, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def log_chat_completion(
        self,
        invocation_id: Any,
        client_id: int | None,
        wrapper_id: int | None,
        source: Any,
        request: Mapping[str, Any],
        response: Any,
        is_cached: int | bool,
        cost: float,
        start_time: str,
    ) -> None:
        """Record one model call: what was asked, the answer, whether cached, its cost."""
        self._write(
            "chat_completions",
            {
                "invocation_id": str(invocation_id),
                "client_id": client_id,
                "wrapper_id": wrapper_id,
                "session_id": self.session_id,
                "source_name": _name(source),
                "request": _json(redact(dict(request))),
                "response": response if isinstance(response, str) else _json(response),
                "is_cached": int(is_cached),
                "cost": cost,
                "start_time": start_time,
                "end_time": _now(),
            },
        )

    def log_new_agent(self, agent: Any, init_args: Mapping[str, Any] | None = None) -> None:
        """Record that an agent was built, with its constructor arguments (secrets left out)."""
        self._write(
            "agents",
            {
                "agent_id": id(agent),
                "wrapper_id": None,
                "session_id": self.session_id,
                "name": _name(agent),
                "class": type(agent).__name__,
                "init_args": _json(redact(dict(init_args or {}))),
                "timestamp": _now(),
            },
        )

    def log_event(self, source: Any, name: str, **kwargs: Any) -> None:
        """Record an agent event (`received_message`, ...) with its details as JSON."""
        self._write(
            "events",
            {
                "event_name": name,
                "source_id": id(source),
                "source_name": _name(source),
                "agent_module": type(source).__module__,
                "agent_class_name": type(source).__name__,
                "json_state": _json(kwargs),
                "timestamp": _now(),
            },
        )

    def log_new_wrapper(self, wrapper: Any, init_args: Mapping[str, Any] | None = None) -> None:
        """Record a model-client wrapper (AutoGen's `OpenAIWrapper`)."""
        self._write(
            "oai_wrappers",
            {
                "wrapper_id": id(wrapper),
                "session_id": self.session_id,
                "init_args": _json(redact(dict(init_args or {}))),
                "timestamp": _now(),
            },
        )

    def log_new_client(
        self, client: Any, wrapper: Any, init_args: Mapping[str, Any] | None = None
    ) -> None:
        """Record a model client made by a wrapper."""
        self._write(
            "oai_clients",
            {
                "client_id": id(client),
                "wrapper_id": id(wrapper),
                "session_id": self.session_id,
                "class": type(client).__name__,
                "init_args": _json(redact(dict(init_args or {}))),
                "timestamp": _now(),
            },
        )

    def log_function_use(
        self, source: Any, function: Callable[..., Any] | str, args: Any, returns: Any
    ) -> None:
        """Record a function or tool an agent ran, its arguments and what it returned."""
        self._write(
            "function_calls",
            {
                "source_id": id(source),
                "source_name": _name(source),
                "function_name": function
                if isinstance(function, str)
                else getattr(function, "__name__", repr(function)),
                "args": _json(args),
                "returns": _json(returns),
                "timestamp": _now(),
            },
        )


class SqliteLogger(BaseLogger):
    """Rows in AutoGen's SQLite tables (`config={"dbname": "logs.db"}`; ":memory:" works)."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.dbname = str(self.config.get("dbname", "logs.db"))
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def start(self) -> str:
        import sqlite3  # loaded when logging to SQLite starts, not with every agent program

        with self._lock:
            if self._db is None:
                self._db = sqlite3.connect(self.dbname, check_same_thread=False)
                with self._db:
                    for statement in _SCHEMA:
                        self._db.execute(statement)
                    self._db.execute(
                        "INSERT OR REPLACE INTO version (id, version_number) VALUES (1, 1)"
                    )
        return self.session_id

    def get_connection(self) -> sqlite3.Connection | None:
        return self._db

    def _write(self, table: str, row: dict[str, Any]) -> None:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        statement = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})"
        with self._lock:
            if self._db is None:
                return  # stopped (or never started): nothing to write to
            with self._db:
                self._db.execute(statement, tuple(row.values()))

    def stop(self) -> None:
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                db.close()


_FILE_KEYS = {  # AutoGen's file records name a few fields differently from its tables
    "agents": {"name": "agent_name"},
    "function_calls": {"args": "input_args"},
}


class FileLogger(BaseLogger):
    """One JSON object a line (`config={"filename": "runtime.log"}`), each with `thread_id`."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.log_file = str(self.config.get("filename", "runtime.log"))
        self._lock = threading.Lock()
        Path(self.log_file).touch()

    def _write(self, table: str, row: dict[str, Any]) -> None:
        renames = _FILE_KEYS.get(table, {})
        record = {renames.get(key, key): value for key, value in row.items()}
        record["thread_id"] = threading.get_ident()
        with self._lock, Path(self.log_file).open("a", encoding="utf-8") as out:
            out.write(_json(record) + "\n")


class _Active:
    logger: BaseLogger | None = None


_active = _Active()


def start(
    logger: BaseLogger | None = None,
    logger_type: Literal["sqlite", "file"] = "sqlite",
    config: Mapping[str, Any] | None = None,
) -> str:
    """Start logging (stopping a logger already running) and return the session id.

    Raises:
        AgentConfigError: `logger_type` is neither "sqlite" nor "file".
    """
    if logger is None:
        if logger_type == "sqlite":
            logger = SqliteLogger(config)
        elif logger_type == "file":
            logger = FileLogger(config)
        else:
            raise AgentConfigError(f"logger_type must be 'sqlite' or 'file'; got {logger_type!r}")
    stop()
    session_id = logger.start()
    _active.logger = logger
    log.info("runtime_logging.started", session_id=session_id, logger=type(logger).__name__)
    return session_id


def stop() -> None:
    """Stop logging and close the log (nothing happens when logging is off)."""
    running, _active.logger = _active.logger, None
    if running is not None:
        running.stop()
        log.info("runtime_logging.stopped", session_id=running.session_id)


def get_connection() -> sqlite3.Connection | None:
    """The SQLite connection of the running logger (None for a file logger or when off)."""
    running = _active.logger
    return None if running is None else running.get_connection()


def logging_enabled() -> bool:
    """Whether a logger is running."""
    return _active.logger is not None


def log_new_agent(agent: Any, init_args: Mapping[str, Any] | None = None) -> None:
    """Record that an agent was built (when logging is on)."""
    running = _active.logger
    if running is not None:
        log.debug("agent.created", agent=_name(agent), cls=type(agent).__name__)
        running.log_new_agent(agent, init_args)


def log_chat_completion(
    *,
    invocation_id: Any,
    source: Any,
    request: Mapping[str, Any],
    response: Any,
    is_cached: bool,
    cost: float,
    start_time: str,
    client_id: int | None = None,
    wrapper_id: int | None = None,
) -> None:
    """Record one model call (when logging is on)."""
    running = _active.logger
    if running is not None:
        log.debug("model.completion", source=_name(source), cost=cost, cached=is_cached)
        running.log_chat_completion(
            invocation_id,
            client_id,
            wrapper_id,
            source,
            request,
            response,
            is_cached,
            cost,
            start_time,
        )


def log_agent_completion(agent: Any, request: list[dict[str, Any]], response: Any) -> None:
    """Record a model call an agent just made (`response` is a `ModelResponse`)."""
    log_chat_completion(
        invocation_id=uuid.uuid4(),
        source=agent,
        request={"messages": request},
        response=response.to_message(),
        is_cached=bool(getattr(response, "cached", False)),
        cost=float(response.cost),
        start_time=_now(),
    )


def log_event(source: Any, name: str, **kwargs: Any) -> None:
    """Record an agent event (when logging is on)."""
    running = _active.logger
    if running is not None:
        log.debug("agent.event", source=_name(source), event_name=name)
        running.log_event(source, name, **kwargs)


def log_received(agent: Any, message: Mapping[str, Any], sender: str) -> None:
    """Record AutoGen's "received_message" event: a plain message as its text, else the dict."""
    content = message.get("content")
    plain = isinstance(content, str) and not message.get("tool_calls")
    log_event(
        agent,
        "received_message",
        message=content if plain else dict(message),
        sender=sender,
        valid=True,
    )


def log_function_use(
    source: Any, function: Callable[..., Any] | str, args: Any, returns: Any
) -> None:
    """Record a function or tool call (when logging is on)."""
    running = _active.logger
    if running is not None:
        running.log_function_use(source, function, args, returns)
