"""The transport seam: how envelopes reach agents that live in another process.

The runtime asks `is_local(agent_id)` for every delivery. Local ones go straight into a mailbox
as Python objects (no serialization); the rest go to `send` / `tell` on the transport, which
serializes them and hands them to the owning process, whose transport calls `host.deliver`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._clock import Clock
    from ._deadletters import DeadLetterReason
    from ._envelope import Envelope
    from ._ids import AgentId
    from ._serialization import MessageCodec


class TransportHost(Protocol):
    """The runtime as a transport sees it: the local side of every delivery.

    `clock` is where deadlines live (a transport sends the time left, not the deadline), and
    `codec` turns messages into JSON and back.
    """

    clock: Clock
    codec: MessageCodec

    async def deliver(self, envelope: Envelope) -> Any:
        """Deliver an inbound envelope to a local agent.

        A SEND returns the handler's result or raises its typed error. A TELL or PUBLISH returns
        once accepted into the mailbox; when the transport sets `envelope.reply`, that future
        resolves when the message is settled (handled, or failed with a typed error), which lets
        a transport acknowledge only after handling.
        """
        ...

    def agent_types(self) -> frozenset[str]:
        """The agent types registered in this process."""
        ...

    def reject_inbound(
        self,
        envelope: Envelope,
        reason: DeadLetterReason,
        error: BaseException | None,
        detail: str = "",
    ) -> None:
        """Count an inbound envelope the transport could not deliver and dead-letter it."""
        ...


class Transport(ABC):
    """Carries envelopes between processes. Owned by one runtime: started and closed with it."""

    @abstractmethod
    async def start(self, host: TransportHost) -> None:
        """Connect and begin receiving envelopes for `host`."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop receiving and disconnect; in-flight remote requests fail with typed errors."""

    @abstractmethod
    def is_local(self, agent_id: AgentId) -> bool:
        """True when `agent_id` is (to be) activated in this process."""

    def tells_local(self, agent_id: AgentId) -> bool:
        """True when a tell or publish to `agent_id` may go straight into a local mailbox.

        The same as `is_local` unless the transport keeps tells in a durable log: then it says
        False and carries local tells too, so a crash cannot lose what was accepted.
        """
        return self.is_local(agent_id)

    def hosts_elsewhere(self, agent_type: str) -> bool:
        """True when another live process hosts `agent_type` (only a distributed transport
        knows; a chat layer asks it to address agents that live on workers)."""
        return False

    @abstractmethod
    async def send(self, envelope: Envelope) -> Any:
        """Request/response to a remote agent, within `envelope.deadline`."""

    @abstractmethod
    async def tell(self, envelope: Envelope) -> None:
        """Fire-and-forget to a remote agent (`envelope.recipient` is set)."""


class InProcessTransport(Transport):
    """Everything is local: the runtime never calls `send`/`tell`. The default transport."""

    async def start(self, host: TransportHost) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def is_local(self, agent_id: AgentId) -> bool:
        return True

    async def send(self, envelope: Envelope) -> Any:
        raise AssertionError("in-process transport has no remote agents")  # pragma: no cover

    async def tell(self, envelope: Envelope) -> None:
        raise AssertionError("in-process transport has no remote agents")  # pragma: no cover
