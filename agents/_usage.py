"""AutoGen's `gather_usage_summary`: the model usage of several agents, summed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from moot.models import UsageSummary

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._conversable import ConversableAgent


def gather_usage_summary(agents: Iterable[ConversableAgent]) -> UsageSummary:
    """The summed model usage of `agents` over all their chats so far."""
    total = UsageSummary()
    for agent in agents:
        total = total + agent.get_total_usage()
    return total
