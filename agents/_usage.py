"""AutoGen's `gather_usage_summary`: the model usage of several agents, summed, in its dict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moot.models import UsageSummary

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._conversable import ConversableAgent


def gather_usage_summary(agents: Iterable[ConversableAgent]) -> dict[str, dict[str, Any]]:
    """The summed model usage of `agents` over all their chats so far, in AutoGen's shape:
    `{"usage_including_cached_inference": {"total_cost": ..., "<model>": {"cost", "prompt_tokens",
    "completion_tokens", "total_tokens"}}, "usage_excluding_cached_inference": {...}}`; with no
    model calls each part is `{"total_cost": 0}`. `agent.get_total_usage()` gives the typed form.
    """
    total = UsageSummary()
    for agent in agents:
        total = total + agent.get_total_usage()
    return total.as_dict()
