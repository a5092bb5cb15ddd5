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
