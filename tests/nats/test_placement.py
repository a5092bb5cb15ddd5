"""Placement without a broker (tokens, rendezvous, membership) and with one (single activation)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from moot.runtime import (
    Agent,
    AgentId,
    Envelope,
    Runtime,
    handler,
)
from moot.runtime.nats import NatsTransport
from moot.runtime.nats._placement import (
    Membership,
    decode_token,
    encode_token,
    rendezvous,
)

if TYPE_CHECKING:
    from nats_helpers import RuntimeMaker

printable = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1)


@given(printable)
def test_any_printable_key_becomes_one_safe_token(key: str) -> None:
    token = encode_token(key)
    assert decode_token(token) == key
    assert token
    assert all(c.isascii() and (c.isalnum() or c in "_-=") for c in token)


def test_rendezvous_moves_only_the_keys_of_a_node_that_leaves() -> None:
    nodes = ("a", "b", "c")
    keys = [AgentId("chat", f"k{i}") for i in range(300)]
    before = {k: rendezvous(k, nodes) for k in keys}
    after = {k: rendezvous(k, ("a", "c")) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved
    assert all(before[k] == "b" for k in moved)
    assert {before[k] for k in keys} == set(nodes)  # every node wins some


def test_membership_expires_silent_nodes_and_tracks_types() -> None:
    view = Membership(ttl=1.0)
    assert view.heard("a", frozenset({"chat"}), now=0.0)
    assert not view.heard("a", frozenset({"chat"}), now=0.5)
    view.heard("b", frozenset({"player"}), now=1.0)
    assert view.hosting("chat") == ("a",)
    assert view.expire(now=1.6) == ["a"]
    assert view.owner(AgentId("chat", "x")) is None
    assert view.owner(AgentId("player", "x")) == "b"


class Counted(Agent):
    """Counts activations per key in a dict the test owns, and reports who runs it."""

    def __init__(self, context: object, name: str, active: dict[AgentId, list[str]]) -> None:
        super().__init__(context)  # type: ignore[arg-type]
        self.name = name
        self.active = active

    async def on_activate(self, state: object) -> None:
        self.active.setdefault(self.id, []).append(self.name)

    @handler
    async def on_str(self, message: str, ctx: Envelope) -> str:
        return self.name


async def test_each_key_runs_on_exactly_one_worker(make_runtime: RuntimeMaker) -> None:
    active: dict[AgentId, list[str]] = {}

    def worker(name: str) -> object:
        def setup(runtime: Runtime) -> None:
            runtime.register("counted", lambda ctx: Counted(ctx, name, active))

        return setup

    w1 = await make_runtime(worker("w1"))
    w2 = await make_runtime(worker("w2"))
    clients = [await make_runtime() for _ in range(2)]
    keys = [AgentId("counted", f"k{i}") for i in range(40)]
    # Both clients and both workers race to reach every key at once.
    callers = [*clients, w1, w2]
    answers = await asyncio.gather(
        *(rt.send("hi", key, timeout=10) for key in keys for rt in callers)
    )
    for i, key in enumerate(keys):
        runs_on = set(answers[i * len(callers) : (i + 1) * len(callers)])
        assert runs_on == set(active[key]), key  # everyone reached the one activation
        assert len(active[key]) == 1, key
    assert {"w1", "w2"} == {names[0] for names in active.values()}  # spread over both
    # A worker that leaves hands its keys on: the other takes their leases.
    assert isinstance(w1.transport, NatsTransport)
    leaving = {k for k in keys if w1.transport.is_local(k)}
    await w1.stop()
    for key in sorted(leaving, key=str):
        assert await clients[0].send("again", key, timeout=10) == "w2"
    assert all(active[k] == ["w1", "w2"] for k in leaving)
