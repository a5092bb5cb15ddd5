"""The agents' errors: `AgentError` and its branch; the whole tree is drawn once, in
`moot.runtime._errors`.
"""

from __future__ import annotations

from moot.runtime import ConfigError, MootError


class AgentError(MootError):
    """Base of the errors the agent layer raises on purpose."""


class EventLoopRunningError(AgentError, RuntimeError):
    """A blocking entry point (`initiate_chat`, `generate_reply`, ...) was called inside a loop."""


class AgentConfigError(AgentError, ConfigError):
    """An agent argument (human_input_mode, code_execution_config, ...) has an unusable value."""


class ToolRegistrationError(AgentError, ValueError):
    """A function cannot be registered as a tool (no llm_config, unsupported signature, ...)."""


class HumanInputError(AgentError):
    """The input provider has no answer to give (a scripted provider ran out, stdin closed)."""


class ConfigValueTypeError(AgentConfigError, TypeError):
    """An llm_config value moot cannot use or send, e.g. a sync `http_client` or an object that
    is not JSON-serializable (AutoGen raises TypeError here, so this is one too)."""


class CarryoverTypeError(AgentConfigError, TypeError):
    """A chat's `carryover` is neither a str nor a list (of str or of messages)."""


class InvalidMessageError(AgentError, ValueError):
    """A message has none of `content`, `tool_calls`, `tool_responses` or `function_call`."""


class NoConversationError(AgentError, KeyError):
    """The agent has no conversation with the agent named (AutoGen raises KeyError here)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AmbiguousPeerError(AgentError, ValueError):
    """`last_message()` without an agent, when this agent has talked with several."""


class NoMessagesError(AgentError, ValueError, AssertionError):
    """`generate_reply` was given neither messages nor a sender; AutoGen asserts here, so code
    written for it catches AssertionError, and this is one too."""


class McpError(AgentError):
    """Base of the errors of MCP servers used as tools (see `McpServer`)."""


class McpNotInstalledError(McpError, ImportError):
    """The official `mcp` SDK is not installed; `pip install 'moot[mcp]'` brings it."""


class McpConfigError(McpError, AgentConfigError):
    """An `McpServer` argument cannot be used (neither or both of command and url, a bound < 1)."""


class McpConnectionError(McpError):
    """The server could not be started or reached, or its handshake failed."""


class McpServerDiedError(McpConnectionError):
    """The connection to the server ended while a request was waiting; the next call reconnects."""


class McpTimeoutError(McpError, TimeoutError):
    """The server did not answer within the call or connect timeout; the call was cancelled."""


class McpCallError(McpError):
    """The server answered with a protocol error (an unknown tool, invalid parameters, ...)."""
