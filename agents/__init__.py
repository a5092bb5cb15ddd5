"""moot.agents: AutoGen's classic agents on the moot runtime: ConversableAgent, AssistantAgent,
UserProxyAgent, two-agent and nested chats, tools (MCP servers' too: `McpServer`), human input and
code execution.

`GroupChat` and `GroupChatManager` live in `moot.groupchat`; they are also reachable here, as in
AutoGen's flat namespace, through a lazy attribute (the group chat builds on the agents, so this
package never imports it at load time).

A chat driver (the two-agent loop here, the group chat manager in `moot.groupchat`) speaks the
participant protocol (`Say`, `Turn`, `TurnReply`, `Summarize`, `CloseChat` sent to a
`ChatParticipant`) and uses its helpers: `new_chat_id`, `runtime_scope` (the caller's runtime or
a private one), `run_sync` (the blocking form of an async entry point) and `print_message`
(AutoGen's console output).
"""

from typing import Any

from ._agent import Agent
from ._assistant import AssistantAgent
from ._chat import (
    AsyncRunResponse,
    ChatResult,
    ChatState,
    RunResponse,
    new_chat_id,
    print_message,
    run_sync,
    runtime_scope,
)
from ._conversable import ConversableAgent, default_is_termination_msg, register_function
from ._errors import (
    AgentConfigError,
    AgentError,
    AmbiguousPeerError,
    CarryoverTypeError,
    ConfigValueTypeError,
    EventLoopRunningError,
    HumanInputError,
    InvalidMessageError,
    McpCallError,
    McpConfigError,
    McpConnectionError,
    McpError,
    McpNotInstalledError,
    McpServerDiedError,
    McpTimeoutError,
    NoConversationError,
    NoMessagesError,
    ToolRegistrationError,
)
from ._human_input import (
    ConsoleInputProvider,
    FunctionInputProvider,
    InputProvider,
    InputRequest,
    PendingInput,
    QueueInputProvider,
    ScriptedInputProvider,
)
from ._mcp import McpResult, McpServer, McpStatistics, McpTool
from ._nested import register_nested_chats
from ._participant import ChatParticipant, CloseChat, Say, Summarize, Turn, TurnReply
from ._sequential import a_initiate_chats, initiate_chats
from ._streams import IOConsole, IOStream
from ._tools import Tool
from ._usage import gather_usage_summary
from ._user_proxy import UserProxyAgent
from ._utils import content_str, parse_tags_from_content

_FROM_GROUPCHAT = frozenset({"GroupChat", "GroupChatManager"})


def __getattr__(name: str) -> Any:
    """AutoGen users import `GroupChat` beside the agents: hand them `moot.groupchat`'s."""
    if name in _FROM_GROUPCHAT:
        import moot.groupchat

        return getattr(moot.groupchat, name)
    raise AttributeError(f"module 'moot.agents' has no attribute {name!r}")


__all__ = [
    "Agent",
    "AgentConfigError",
    "AgentError",
    "AmbiguousPeerError",
    "AssistantAgent",
    "AsyncRunResponse",
    "CarryoverTypeError",
    "ChatParticipant",
    "ChatResult",
    "ChatState",
    "CloseChat",
    "ConfigValueTypeError",
    "ConsoleInputProvider",
    "ConversableAgent",
    "EventLoopRunningError",
    "FunctionInputProvider",
    "GroupChat",
    "GroupChatManager",
    "HumanInputError",
    "IOConsole",
    "IOStream",
    "InputProvider",
    "InputRequest",
    "InvalidMessageError",
    "McpCallError",
    "McpConfigError",
    "McpConnectionError",
    "McpError",
    "McpNotInstalledError",
    "McpResult",
    "McpServer",
    "McpServerDiedError",
    "McpStatistics",
    "McpTimeoutError",
    "McpTool",
    "NoConversationError",
    "NoMessagesError",
    "PendingInput",
    "QueueInputProvider",
    "RunResponse",
    "Say",
    "ScriptedInputProvider",
    "Summarize",
    "Tool",
    "ToolRegistrationError",
    "Turn",
    "TurnReply",
    "UserProxyAgent",
    "a_initiate_chats",
    "content_str",
    "default_is_termination_msg",
    "gather_usage_summary",
    "initiate_chats",
    "new_chat_id",
    "parse_tags_from_content",
    "print_message",
    "register_function",
    "register_nested_chats",
    "run_sync",
    "runtime_scope",
]
