"""`LoopbackNetwork`: several runtimes in one process, joined as if they were separate processes.

Every envelope that crosses from one runtime to another goes through both sides' `MessageCodec`
(JSON bytes on the way out, a fresh object on the way in), so a test sees the same serialization
failures a real broker would show, without running one. Placement is by agent type: a runtime
hosts the types registered on it, and a key of another type goes to the first peer that hosts it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from moot.runtime import AgentNotFoundError, LifecycleError, Transport

if TYPE_CHECKING:
    from moot.runtime import AgentId, Envelope, TransportHost


class LoopbackNetwork:
    """The wire between the runtimes of one test: make one transport per runtime with `join()`."""

    def __init__(self) -> None:
        self._hosts: list[TransportHost] = []

    def join(self) -> LoopbackTransport:
        """A new transport on this network, for one `Runtime(transport=...)`."""
        return LoopbackTransport(self)

    def _attach(self, host: TransportHost) -> None:
        self._hosts.append(host)

    def _detach(self, host: TransportHost) -> None:
        if host in self._hosts:
            self._hosts.remove(host)

    def _owner(self, agent_id: AgentId, asking: TransportHost | None) -> TransportHost:
        for host in self._hosts:
            if host is not asking and agent_id.type in host.agent_types():
                return host
        raise AgentNotFoundError(
            f"no runtime on the loopback network hosts agent type {agent_id.type!r}",
            agent_id=agent_id,
        )


def _carry(message: Any, source: TransportHost, target: TransportHost) -> Any:
    """Encode on `source`, through JSON bytes, decode on `target`: what a wire would do."""
    raw = json.dumps(source.codec.encode(message), separators=(",", ":"))
    return target.codec.decode(json.loads(raw))


class LoopbackTransport(Transport):
    """One runtime's end of a `LoopbackNetwork`."""

    def __init__(self, network: LoopbackNetwork) -> None:
        self._network = network
        self._host: TransportHost | None = None

    async def start(self, host: TransportHost) -> None:
        self._host = host
        self._network._attach(host)

    async def aclose(self) -> None:
        if self._host is not None:
            self._network._detach(self._host)

    def is_local(self, agent_id: AgentId) -> bool:
        return self._host is not None and agent_id.type in self._host.agent_types()

    def _route(self, envelope: Envelope) -> tuple[TransportHost, TransportHost, Envelope]:
        if self._host is None or envelope.recipient is None:
            raise LifecycleError(
                "Cannot carry a message on a loopback transport that is not started."
            )
        owner = self._network._owner(envelope.recipient, self._host)
        # A request gets a fresh reply future on the owner's side, as a wire would give it.
        reply = asyncio.get_running_loop().create_future() if envelope.is_request else None
        carried = replace(
            envelope, message=_carry(envelope.message, self._host, owner), reply=reply
        )
        return self._host, owner, carried

    async def send(self, envelope: Envelope) -> Any:
        here, owner, carried = self._route(envelope)
        result = await owner.deliver(carried)
        return None if result is None else _carry(result, owner, here)

    async def tell(self, envelope: Envelope) -> None:
        _, owner, carried = self._route(envelope)
        await owner.deliver(carried)
