"""The shared call shapes: every stage of delivery is a `Handler`; agents are built by factories."""

from ._agent import AgentFactory
from ._envelope import Handler

__all__ = ["AgentFactory", "Handler"]
