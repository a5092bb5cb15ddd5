"""Subscriptions route a topic to agent types; the topic's source becomes the agent's key."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import InvalidIdError
from ._ids import AgentId, TopicId


@dataclass(frozen=True, slots=True)
class TypeSubscription:
    """Messages on topics of exactly `topic_type` go to `AgentId(agent_type, topic.source)`."""

    topic_type: str
    agent_type: str

    def __post_init__(self) -> None:
        TopicId(self.topic_type)  # validates
        AgentId(self.agent_type)

    def matches(self, topic_type: str) -> bool:
        """True when this subscription takes topics of `topic_type`."""
        return topic_type == self.topic_type


@dataclass(frozen=True, slots=True)
class PrefixSubscription:
    """Messages on topics whose type starts with `topic_type_prefix` go to `agent_type`."""

    topic_type_prefix: str
    agent_type: str

    def __post_init__(self) -> None:
        if not self.topic_type_prefix:
            raise InvalidIdError("a prefix subscription needs a non-empty prefix")
        AgentId(self.agent_type)

    def matches(self, topic_type: str) -> bool:
        """True when this subscription takes topics of `topic_type`."""
        return topic_type.startswith(self.topic_type_prefix)


Subscription = TypeSubscription | PrefixSubscription
