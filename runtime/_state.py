"""Where passivated agents keep their state between activations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._ids import AgentId


class StateStore(ABC):
    """Saves the mapping an agent returns from `on_passivate`, and hands it back on activation."""

    @abstractmethod
    async def load(self, agent_id: AgentId) -> Mapping[str, Any] | None:
        """The last state saved for `agent_id`, or None."""

    @abstractmethod
    async def save(self, agent_id: AgentId, state: Mapping[str, Any]) -> None:
        """Remember `state` for `agent_id`, replacing what was there."""


class InMemoryStateStore(StateStore):
    """A dict in this process: state survives passivation, not a restart of the process."""

    def __init__(self) -> None:
        self.saved: dict[AgentId, Mapping[str, Any]] = {}

    async def load(self, agent_id: AgentId) -> Mapping[str, Any] | None:
        return self.saved.get(agent_id)

    async def save(self, agent_id: AgentId, state: Mapping[str, Any]) -> None:
        self.saved[agent_id] = dict(state)
