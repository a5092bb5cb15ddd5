"""Supervisor strategies: what happens to an agent whose handler failed on a tell or publish.

A strategy overrides `decide`; the restart budget (`max_restarts` per `period` seconds) is enforced
by the runtime for every strategy, and exceeding it escalates as `RestartBudgetExceededError`.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._ids import AgentId


class Directive(enum.Enum):
    """A supervisor's answer to a failure."""

    RESUME = "resume"  # keep the same instance and its state; go on with the next message
    RESTART = "restart"  # drop the instance, build a fresh one with the factory, go on
    STOP = "stop"  # stop the agent: queued asks get AgentStoppedError, queued tells dead-letter
    ESCALATE = "escalate"  # stop the agent and report a SupervisionError to the runtime's owner


@dataclass(kw_only=True)
class SupervisorStrategy:
    """Base strategy: decides per failure. Subclasses override `decide` only."""

    max_restarts: int = 3
    period: float = 60.0

    def decide(self, agent_id: AgentId, error: BaseException) -> Directive:
        """Pick the directive for `error`, raised by `agent_id`'s handler."""
        raise NotImplementedError


class Resume(SupervisorStrategy):
    """Ignore the failure (it is dead-lettered) and keep the instance."""

    def decide(self, agent_id: AgentId, error: BaseException) -> Directive:
        return Directive.RESUME


class Restart(SupervisorStrategy):
    """Rebuild the instance from its factory, within the restart budget. The default."""

    def decide(self, agent_id: AgentId, error: BaseException) -> Directive:
        return Directive.RESTART


class Stop(SupervisorStrategy):
    """Stop the agent at its first failure."""

    def decide(self, agent_id: AgentId, error: BaseException) -> Directive:
        return Directive.STOP


class Escalate(SupervisorStrategy):
    """Stop the agent and hand the failure to the runtime's owner."""

    def decide(self, agent_id: AgentId, error: BaseException) -> Directive:
        return Directive.ESCALATE


@dataclass
class RestartBudget:
    """Timestamps of recent restarts of one agent, to enforce `max_restarts` per `period`."""

    times: deque[float] = field(default_factory=deque)

    def try_spend(self, now: float, strategy: SupervisorStrategy) -> bool:
        """Record a restart at `now` if the budget allows it; False when it is exhausted."""
        while self.times and now - self.times[0] > strategy.period:
            self.times.popleft()
        if len(self.times) >= strategy.max_restarts:
            return False
        self.times.append(now)
        return True
