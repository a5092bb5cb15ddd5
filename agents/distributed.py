"""moot.agents.distributed: classic chats whose agents live on worker processes (NATS).

A worker's `setup` calls `host_agents(runtime, ...)`; a client needs nothing but a runtime whose
transport reaches the workers. The rest is the protocol a driver speaks to participants on other
processes (`OpenChat`, `ReportChat`, `ChatReport`) and the codec names every process agrees on.
See docs/distributed.md.
"""

from ._distributed import (
    CHAT_MESSAGES,
    host_agents,
    hosted_agent,
    is_distributed,
    on_workers,
    register_chat_messages,
    shared_type,
    usage_from_wire,
    usage_to_wire,
)
from ._participant import ChatReport, OpenChat, ReportChat

__all__ = [
    "CHAT_MESSAGES",
    "ChatReport",
    "OpenChat",
    "ReportChat",
    "host_agents",
    "hosted_agent",
    "is_distributed",
    "on_workers",
    "register_chat_messages",
    "shared_type",
    "usage_from_wire",
    "usage_to_wire",
]
