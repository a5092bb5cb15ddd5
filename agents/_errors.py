"""The agents' branch of moot's error tree (the model client's errors live in `_model_errors`).

MootError
└── AgentError                                  an agent or chat cannot do what was asked
    ├── EventLoopRunningError (RuntimeError)    a sync chat call made inside a running loop
    ├── AgentConfigError (ValueError)           a constructor argument or config is unusable
    ├── ToolRegistrationError (ValueError)      a function cannot become a tool
    └── HumanInputError                         the input provider could not give an answer
"""

from __future__ import annotations

from moot.runtime import MootError


class AgentError(MootError):
    """Base of the errors the agent layer raises on purpose."""


class EventLoopRunningError(AgentError, RuntimeError):
    """A blocking entry point (`initiate_chat`, `generate_reply`, ...) was called inside a loop."""


class AgentConfigError(AgentError, ValueError):
    """An agent argument (human_input_mode, code_execution_config, ...) has an unusable value."""


class ToolRegistrationError(AgentError, ValueError):
    """A function cannot be registered as a tool (no llm_config, unsupported signature, ...)."""


class HumanInputError(AgentError):
    """The input provider has no answer to give (a scripted provider ran out, stdin closed)."""
