"""moot.groupchat: group chats whose manager routes each turn through a speaker policy
(round robin, random, manual, LLM-chosen, transition graph, handoffs, your callable) until a
termination condition holds; the events it streams; the errors it raises."""

from ._distributed import GroupChatRun, register_groupchat_messages
from ._durable import JournaledInput
from ._errors import (
    AgentNameConflictError,
    ChatAlreadyFinishedError,
    ChatWaitingForInputError,
    GroupChatConfigError,
    GroupChatError,
    NoEligibleSpeakerError,
    SpeakerSelectionError,
    UndefinedNextAgentError,
)
from ._events import (
    ChatEvent,
    CodeRunEvent,
    MessageEvent,
    SpeakerSelectedEvent,
    TerminationEvent,
    TokenUsageEvent,
    ToolCallEvent,
)
from ._group import GroupChat
from ._manager import GroupChatManager, GroupChatResult
from ._policies import (
    CallablePolicy,
    Handoffs,
    ManualPolicy,
    RandomPolicy,
    RoundRobin,
    ScriptedPolicy,
    SpeakerPolicy,
    TransitionGraph,
)
from ._selector import LLMSelector, parse_names
from ._state import (
    GroupChatState,
    NoSpeaker,
    StopReason,
    handoff_tool,
)
from ._terminations import (
    AllOf,
    AnyOf,
    CostBudget,
    ExternalStop,
    HandoffTermination,
    LoopDetection,
    MaxMessages,
    MaxTurns,
    MessagePredicate,
    SourceMatch,
    StopHandle,
    Termination,
    TextMention,
    TimeLimit,
    TokenBudget,
)

__all__ = [
    "AgentNameConflictError",
    "AllOf",
    "AnyOf",
    "CallablePolicy",
    "ChatAlreadyFinishedError",
    "ChatEvent",
    "ChatWaitingForInputError",
    "CodeRunEvent",
    "CostBudget",
    "ExternalStop",
    "GroupChat",
    "GroupChatConfigError",
    "GroupChatError",
    "GroupChatManager",
    "GroupChatResult",
    "GroupChatRun",
    "GroupChatState",
    "HandoffTermination",
    "Handoffs",
    "JournaledInput",
    "LLMSelector",
    "LoopDetection",
    "ManualPolicy",
    "MaxMessages",
    "MaxTurns",
    "MessageEvent",
    "MessagePredicate",
    "NoEligibleSpeakerError",
    "NoSpeaker",
    "RandomPolicy",
    "RoundRobin",
    "ScriptedPolicy",
    "SourceMatch",
    "SpeakerPolicy",
    "SpeakerSelectedEvent",
    "SpeakerSelectionError",
    "StopHandle",
    "StopReason",
    "Termination",
    "TerminationEvent",
    "TextMention",
    "TimeLimit",
    "TokenBudget",
    "TokenUsageEvent",
    "ToolCallEvent",
    "TransitionGraph",
    "UndefinedNextAgentError",
    "handoff_tool",
    "parse_names",
    "register_groupchat_messages",
]
