"""Placement for the NATS transport: subject names, the live membership, rendezvous hashing.

Pure bookkeeping with no I/O, so it can be tested on its own. The transport feeds it membership
updates from a JetStream KV bucket and asks it which worker should own an agent key.

Subjects are `<prefix>.<verb>.<node>.<agent_type>.<agent_key>`: a request or tell goes to the
worker that owns the key. Types and keys become single subject tokens: a token made only of
letters, digits, `_` and `-` is used as it is; anything else becomes `=` + unpadded urlsafe
base64, so any printable key is carried exactly and the same token is a valid KV key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass

from moot.runtime import AgentId

_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def encode_token(text: str) -> str:
    """One subject token (and KV key part) for `text`, reversible with `decode_token`."""
    if _SAFE.match(text):
        return text
    return "=" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """Invert `encode_token`."""
    if not token.startswith("="):
        return token
    body = token[1:]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


@functools.lru_cache(maxsize=65536)
def agent_tokens(agent_id: AgentId) -> str:
    """`<type>.<key>` as two safe tokens (cached: the same ids come back on every message)."""
    return f"{encode_token(agent_id.type)}.{encode_token(agent_id.key)}"


def agent_from_tokens(type_token: str, key_token: str) -> AgentId:
    """Invert `agent_tokens`."""
    return AgentId(decode_token(type_token), decode_token(key_token))


def lease_key(agent_id: AgentId) -> str:
    """The KV key of `agent_id`'s ownership lease."""
    return agent_tokens(agent_id)


def _score(node: str, agent_id: AgentId) -> bytes:
    digest = hashlib.blake2b(digest_size=8)
    digest.update(node.encode())
    digest.update(b"\x00")
    digest.update(agent_id.type.encode())
    digest.update(b"\x00")
    digest.update(agent_id.key.encode())
    return digest.digest()


def rendezvous(agent_id: AgentId, nodes: list[str] | tuple[str, ...]) -> str | None:
    """The node with the highest hash score for `agent_id` (None when `nodes` is empty).

    When a node leaves, only the keys it won move; when one joins, it wins about 1/n of them.
    """
    best: str | None = None
    best_score = b""
    for node in nodes:
        score = _score(node, agent_id)
        if best is None or score > best_score:
            best, best_score = node, score
    return best


def rendezvous_name(name: str, nodes: tuple[str, ...]) -> str | None:
    """`rendezvous` for a plain name (e.g. which survivor adopts a dead worker's consumer)."""
    best: str | None = None
    best_score = b""
    for node in nodes:
        score = hashlib.blake2b(f"{node}\x00{name}".encode(), digest_size=8).digest()
        if best is None or score > best_score:
            best, best_score = node, score
    return best


@dataclass(slots=True)
class Member:
    """One live worker as the local view knows it."""

    node: str
    types: frozenset[str]
    seen: float  # local monotonic time of its last heartbeat


class Membership:
    """The local view of live workers, fed by heartbeats and expired by silence."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._members: dict[str, Member] = {}
        self._by_type: dict[str, tuple[str, ...]] = {}
        self._owners: dict[AgentId, str | None] = {}  # rendezvous results for this membership

    def __contains__(self, node: object) -> bool:
        return node in self._members

    def nodes(self) -> tuple[str, ...]:
        """Every live node, sorted."""
        return tuple(sorted(self._members))

    def hosting(self, agent_type: str) -> tuple[str, ...]:
        """The live nodes that host `agent_type`, sorted."""
        found = self._by_type.get(agent_type)
        if found is None:
            found = tuple(sorted(n for n, m in self._members.items() if agent_type in m.types))
            self._by_type[agent_type] = found
        return found

    def heard(self, node: str, types: frozenset[str], now: float) -> bool:
        """Record a heartbeat; True when `node` is new or changed its types."""
        member = self._members.get(node)
        if member is not None and member.types == types:
            member.seen = now
            return False
        self._members[node] = Member(node=node, types=types, seen=now)
        self._changed()
        return True

    def left(self, node: str) -> bool:
        """Forget `node` (it left or was deleted); True when it was known."""
        if self._members.pop(node, None) is None:
            return False
        self._changed()
        return True

    def expire(self, now: float) -> list[str]:
        """Forget every node silent for longer than the ttl; returns them."""
        gone = [n for n, m in self._members.items() if now - m.seen > self.ttl]
        for node in gone:
            del self._members[node]
        if gone:
            self._changed()
        return gone

    def _changed(self) -> None:
        self._by_type.clear()
        self._owners.clear()

    def refresh(self, now: float) -> None:
        """Treat every member as just heard (after our own reconnect: silence was ours)."""
        for member in self._members.values():
            member.seen = now

    def owner(self, agent_id: AgentId) -> str | None:
        """The rendezvous owner of `agent_id` among the live nodes hosting its type (kept until
        the membership changes: every delivery asks)."""
        owners = self._owners
        if agent_id in owners:
            return owners[agent_id]
        if len(owners) >= 65536:
            owners.clear()
        owner = owners[agent_id] = rendezvous(agent_id, self.hosting(agent_id.type))
        return owner
