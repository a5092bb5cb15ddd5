"""The NATS transport: the same agents across processes, through a nats-server with JetStream.

How a message travels (see docs/distributed.md for the whole picture):

- SEND is NATS request/reply to `<prefix>.req.<node>.<type>.<key>`, where `<node>` is the worker
  that owns the key. The remaining deadline travels with it; "no responders" is a typed error
  at once; a remote failure comes back as the same typed error.
- TELL and each recipient of a PUBLISH go through the JetStream stream `<prefix>_tells` on
  `<prefix>.tell.<node>.<type>.<key>`, with the message id as `Nats-Msg-Id` (deduplication).
  Each worker pulls from its own durable consumer and acks only once the handler finished
  (at-least-once); `max_ack_pending` bounds what is in flight. When a worker dies, a survivor
  adopts its consumer, so what it had accepted is redelivered to the keys' new owners.
- Placement: workers announce themselves (and the agent types they host) in the KV bucket
  `<prefix>_members`, heartbeating within its TTL. A key is owned through a lease in the KV
  bucket `<prefix>_leases`, taken with compare-and-set, so two workers never run it at once.
  A new key goes to its rendezvous-hash winner among the live workers hosting its type; a lease
  stays with a live owner and moves (again by rendezvous) when its owner leaves or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from moot.observability import TRACEPARENT
from moot.runtime import (
    AgentId,
    ConfigError,
    DeadLetterReason,
    DeadlineExceededError,
    Envelope,
    Kind,
    LifecycleError,
    MootError,
    RuntimeStoppedError,
    SerializationError,
    TopicId,
    Transport,
    TransportHost,
)

from ._errors import (
    NoRespondersError,
    PayloadTooLargeError,
    TransportUnavailableError,
    error_from_wire,
    error_to_wire,
)
from ._feeds import FeedReader, open_feed, send_to_feed
from ._inbox import AckWindow, PendingAck, Replies, no_responders
from ._placement import Membership, agent_tokens, lease_key, rendezvous_name

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Mapping

    from moot.runtime import Clock

log = structlog.get_logger("moot.runtime.nats")

_MOVED = "moved"  # reply status: the key is leased to another worker, named in "owner"
_CACHE_LIMIT = 50_000  # subjects and encoded ids kept per transport before starting over
_KINDS = {kind.value: kind for kind in Kind}  # a dict lookup is cheaper than `Kind(value)`
_dumps = json.JSONEncoder(separators=(",", ":")).encode  # `json.dumps` without its dispatch


class _Tasks:
    """Owner of the transport's background work: spawned here, cancelled and awaited in aclose."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("nats.task_failed", error=repr(task.exception()))

    async def aclose(self) -> None:
        """Cancel every task and wait for it. Cancel again while one is still running: a
        library call may turn a cancellation that races its own timeout into a TimeoutError."""
        pending = set(self._tasks)
        for _ in range(20):
            if not pending:
                return
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        log.error("nats.tasks_left_running", count=len(pending))


class NatsTransport(Transport):
    """Carries envelopes between runtimes through a nats-server with JetStream.

    Every process (workers and clients) registers the same agent types it hosts, message types
    and subscriptions before `start`; a process with no agent types is a pure client.

    `connect_options` go to `nats.connect` unchanged: `tls=ssl_context`, `user`/`password`,
    `token`, `nkeys_seed`, `user_credentials`, ...
    """

    def __init__(
        self,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        *,
        prefix: str = "moot",
        name: str | None = None,
        connect_options: Mapping[str, Any] | None = None,
        heartbeat: float = 1.0,
        member_ttl: float = 5.0,
        ack_wait: float = 30.0,
        max_inflight: int = 256,
        request_timeout: float = 30.0,
        publish_timeout: float = 5.0,
        reconnect_wait: float = 0.5,
        max_buffered_bytes: int = 2 * 1024 * 1024,
        max_hops: int = 4,
        durable_tells: bool = True,
        max_redeliveries: int = 50,
        publish_attempts: int = 3,
    ) -> None:
        if not prefix or not prefix.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(
                f"prefix must be letters, digits, '_' or '-'; got {prefix!r}", setting="prefix"
            )
        if not 0 < heartbeat < member_ttl:
            raise ConfigError("need 0 < heartbeat < member_ttl", setting="heartbeat")
        if publish_attempts < 1 or max_inflight < 1:
            raise ConfigError(
                "need publish_attempts >= 1 and max_inflight >= 1", setting="publish_attempts"
            )
        self.servers = servers
        self.prefix = prefix
        self.node = os.urandom(6).hex()
        self.name = name or f"moot-{self.node}"
        self._connect_options = dict(connect_options or {})
        self.heartbeat = heartbeat
        self.member_ttl = member_ttl
        self.ack_wait = ack_wait
        self.max_inflight = max_inflight
        self.request_timeout = request_timeout
        self.publish_timeout = publish_timeout
        self.reconnect_wait = reconnect_wait
        self.max_buffered_bytes = max_buffered_bytes
        self.max_hops = max_hops
        self.durable_tells = durable_tells
        self.max_redeliveries = max_redeliveries
        self.publish_attempts = publish_attempts
        self.membership = Membership(member_ttl)
        self.stream = f"{prefix}_tells"
        self._host: TransportHost | None = None
        self._clock: Clock | None = None
        self._nc: Any = None
        self._js: Any = None
        self._members_kv: Any = None
        self._leases_kv: Any = None
        self._types: frozenset[str] = frozenset()
        self._held: set[AgentId] = set()  # keys whose lease we hold: delivered locally
        self._owners: dict[AgentId, str] = {}  # learned from "moved" replies
        self._acquiring: dict[AgentId, asyncio.Future[str | None]] = {}
        self._serving: dict[str, asyncio.Task[Any]] = {}  # requests being handled, by message id
        # Requests waiting on each node, so they fail as soon as that node leaves the membership
        # (not at their timeout); `_lost` marks the tasks cancelled for that reason.
        self._waiting: dict[str, dict[str, asyncio.Task[Any]]] = {}
        self._lost: set[str] = set()
        self._adopted: set[str] = set()
        self._member_rev = 0
        self._connected = asyncio.Event()
        self._slots = asyncio.Semaphore(max_inflight)
        self._replies: Replies | None = None  # set at start: the inbox is the connection's
        self._acks: AckWindow | None = None
        self._subjects: dict[tuple[str, str, AgentId], str] = {}
        self._ids: dict[AgentId, bytes] = {}  # `{"to":[type,key],` of each recipient
        self._known: dict[tuple[str, str], AgentId] = {}  # ids decoded from the wire
        self._shared: tuple[str, bytes] = ("", b"")  # a publish's body without "to", by id
        self._tasks = _Tasks()
        self._closing = False
        self._started = False
        self.delivered_tells = 0  # tells handled here and acked
        self.redelivered = 0  # tells that arrived here more than once

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: TransportHost) -> None:
        """Connect, set up the stream and buckets, join the membership, start serving.

        Raises:
            LifecycleError: started twice.
            TransportUnavailableError: the server cannot be reached or has no JetStream.
        """
        if self._started:
            raise LifecycleError("Cannot start a NATS transport twice.")
        self._started = True
        try:
            import nats
        except ImportError as exc:  # pragma: no cover - the optional extra is missing
            raise LifecycleError(
                "the NATS transport needs nats-py: pip install 'moot[nats]'"
            ) from exc
        self._host = host
        self._clock = host.clock
        self._types = host.agent_types()
        try:
            self._nc = await nats.connect(
                self.servers,
                name=self.name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=self.reconnect_wait,
                pending_size=self.max_buffered_bytes,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                error_cb=self._on_error,
                **self._connect_options,
            )
            self._connected.set()
            self._js = self._nc.jetstream(timeout=self.publish_timeout)
            inbox = self._nc.new_inbox()
            self._replies = Replies(inbox + ".r")
            self._acks = AckWindow(
                inbox + ".a", self.max_inflight, self.publish_timeout, self._ack_failed
            )
            await self._nc.subscribe(self._replies.subject, cb=self._replies.on_reply)
            await self._nc.subscribe(self._acks.subject, cb=self._acks.on_ack)
            await self._setup_jetstream()
            await self._nc.subscribe(f"$KV.{self.prefix}_members.>", cb=self._on_member_update)
            await self._load_members()
            if self._types:
                await self._nc.subscribe(
                    f"{self.prefix}.req.{self.node}.>", cb=self._on_request, pending_msgs_limit=0
                )
                await self._nc.subscribe(f"{self.prefix}.cancel.{self.node}", cb=self._on_cancel)
                await self._join()
        except MootError:
            await self._close_connection()
            raise
        except Exception as exc:
            await self._close_connection()
            raise TransportUnavailableError(f"cannot start the NATS transport: {exc!r}") from exc
        self._tasks.spawn(self._heartbeat_loop())
        log.info("nats.started", node=self.node, types=sorted(self._types))

    async def aclose(self) -> None:
        """Leave the membership, stop serving and disconnect. Unacked tells are redelivered."""
        if self._closing:
            return
        self._closing = True
        if self._acks is not None:  # let pipelined publishes get their acks
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.publish_timeout):
                    await self._acks.wait_empty()
            for pending in self._acks.abandon():
                self._report_unconfirmed(pending)
        if self._nc is not None and self._types and self._nc.is_connected:
            with contextlib.suppress(Exception):
                await self._members_kv.delete(self.node)
        await self._tasks.aclose()
        await self._close_connection()
        log.info("nats.closed", node=self.node)

    async def _close_connection(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def _setup_jetstream(self) -> None:
        from nats.js.api import RetentionPolicy, StorageType
        from nats.js.errors import BucketNotFoundError, NotFoundError

        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(
                name=self.stream,
                subjects=[f"{self.prefix}.tell.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
            )
        for attr, bucket, ttl in (
            ("_members_kv", f"{self.prefix}_members", self.member_ttl),
            ("_leases_kv", f"{self.prefix}_leases", None),
        ):
            try:
                kv = await self._js.key_value(bucket)
            except BucketNotFoundError:
                kv = await self._js.create_key_value(bucket=bucket, ttl=ttl, history=1)
            setattr(self, attr, kv)

    async def _join(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig

        durable = f"n_{self.node}"
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_ack_pending=self.max_inflight,
            filter_subject=f"{self.prefix}.tell.{self.node}.>",
        )
        await self._js.add_consumer(self.stream, config=config)
        sub = await self._js.pull_subscribe_bind(durable=durable, stream=self.stream)
        self._tasks.spawn(self._pull_loop(sub, self.node))
        record = json.dumps({"types": sorted(self._types)}).encode()
        self._member_rev = await self._members_kv.create(self.node, record)
        self.membership.heard(self.node, self._types, _now())

    # ----------------------------------------------------------------- connection events

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        log.warning("nats.disconnected", node=self.node)

    async def _on_reconnected(self) -> None:
        self.membership.refresh(_now())  # we were the silent one
        self._connected.set()
        log.info("nats.reconnected", node=self.node)

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats.error", node=self.node, error=repr(exc))

    # ----------------------------------------------------------------- membership

    async def _load_members(self) -> None:
        watcher = await self._members_kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.operation is None and entry.value:
                    self._heard(entry.key, entry.value)
        finally:
            await watcher.stop()

    async def _on_member_update(self, msg: Any) -> None:
        node = msg.subject.rsplit(".", 1)[-1]
        op = msg.headers.get("KV-Operation") if msg.headers else None
        if op in ("DEL", "PURGE"):
            if self.membership.left(node):
                self._membership_changed([node])
        elif msg.data:
            self._heard(node, msg.data)

    def _heard(self, node: str, raw: bytes) -> None:
        try:
            types = frozenset(json.loads(raw)["types"])
        except (ValueError, KeyError, TypeError):
            log.warning("nats.bad_member_record", node=node)
            return
        if self.membership.heard(node, types, _now()):
            log.info("nats.member_joined", node=node, types=sorted(types))

    async def _heartbeat_loop(self) -> None:
        from nats.js.errors import KeyWrongLastSequenceError

        record = json.dumps({"types": sorted(self._types)}).encode()
        while True:
            await asyncio.sleep(self.heartbeat)
            if self._closing:
                return
            if not self._connected.is_set():
                continue
            if self._types:
                try:
                    self._member_rev = await self._members_kv.update(
                        self.node, record, last=self._member_rev
                    )
                except KeyWrongLastSequenceError:
                    # Our record expired (we were silent past the ttl): others may have taken
                    # our leases. Forget the ones we cached so each is checked again, rejoin.
                    log.warning("nats.member_expired", node=self.node)
                    self._held.clear()
                    with contextlib.suppress(Exception):
                        self._member_rev = await self._members_kv.create(self.node, record)
                except Exception as exc:
                    log.warning("nats.heartbeat_failed", node=self.node, error=repr(exc))
                else:
                    self.membership.heard(self.node, self._types, _now())
            gone = self.membership.expire(_now())
            if gone:
                self._membership_changed(gone)
            if self._types:
                await self._adopt_orphans()

    def _membership_changed(self, gone: list[str]) -> None:
        log.info("nats.members_left", nodes=gone)
        dead = set(gone)
        for node in gone:
            self._fail_waiting(node)
        for agent_id in [a for a, n in self._owners.items() if n in dead]:
            del self._owners[agent_id]

    async def _adopt_orphans(self) -> None:
        """Pull from the consumers of dead workers that rendezvous hashing gives us."""
        try:
            infos = await self._js._jsm.consumers_info(self.stream)
        except Exception as exc:
            log.warning("nats.consumers_info_failed", error=repr(exc))
            return
        live = self.membership.nodes()
        for info in infos:
            durable = info.config.durable_name or ""
            node = durable[2:] if durable.startswith("n_") else ""
            if not node or node in live or durable in self._adopted:
                continue
            heir = rendezvous_name(f"consumer:{node}", live)
            if heir != self.node:
                continue
            try:
                sub = await self._js.pull_subscribe_bind(durable=durable, stream=self.stream)
            except Exception as exc:
                log.warning("nats.adopt_failed", consumer=durable, error=repr(exc))
                continue
            self._adopted.add(durable)
            log.info("nats.adopted", consumer=durable, node=self.node)
            self._tasks.spawn(self._pull_loop(sub, node))

    # ----------------------------------------------------------------- placement

    @property
    def adopted_consumers(self) -> frozenset[str]:
        """Durable consumers of dead workers that this transport pulls from."""
        return frozenset(self._adopted)

    def is_local(self, agent_id: AgentId) -> bool:
        return agent_id in self._held

    def hosts_elsewhere(self, agent_type: str) -> bool:
        return any(node != self.node for node in self.membership.hosting(agent_type))

    def tells_local(self, agent_id: AgentId) -> bool:
        # A tell to a key held here still goes through the stream (unless durable tells are
        # off): kept in memory only, it would be lost with this process.
        return not self.durable_tells and agent_id in self._held

    def _route(self, agent_id: AgentId) -> str:
        owner = self._owners.get(agent_id)
        if owner is not None and owner in self.membership:
            return owner
        owner = self.membership.owner(agent_id)
        if owner is None:
            raise NoRespondersError(
                f"no live worker hosts agent type {agent_id.type!r}", agent_id=agent_id
            )
        return owner

    async def _acquire(self, agent_id: AgentId) -> str | None:
        """Make sure we may run `agent_id`: None when we own it, else the owner to send to."""
        if agent_id in self._held:
            return None
        if agent_id.type not in self._types:  # e.g. an adopted stream: pass it on
            return self._route(agent_id)
        pending = self._acquiring.get(agent_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._acquiring[agent_id] = future
        try:
            owner = await self._take_lease(agent_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        else:
            future.set_result(owner)
            return owner
        finally:
            del self._acquiring[agent_id]

    async def _take_lease(self, agent_id: AgentId) -> str | None:
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        key = lease_key(agent_id)
        me = self.node.encode()
        for _ in range(8):
            try:
                entry = await self._leases_kv.get(key)
            except KeyNotFoundError:
                entry = None
            holder: str | None = None
            if entry is not None and entry.value:
                holder = bytes(entry.value).decode()
            if holder == self.node:
                self._held.add(agent_id)
                return None
            if holder is not None and holder in self.membership:
                self._owners[agent_id] = holder
                return holder
            heir = self.membership.owner(agent_id)
            if heir is not None and heir != self.node:
                return heir
            try:
                if entry is None:
                    await self._leases_kv.create(key, me)
                else:
                    await self._leases_kv.update(key, me, last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # someone else moved first: read again
            self._held.add(agent_id)
            log.info("nats.lease_taken", agent=str(agent_id), node=self.node, previous=holder)
            return None
        raise TransportUnavailableError(f"could not settle the lease of {agent_id}")

    # ----------------------------------------------------------------- wire format

    def _encode(self, env: Envelope, remaining: float | None, hops: int = 0) -> bytes:
        host = self._host
        assert host is not None
        assert env.recipient is not None
        body = {
            "to": [env.recipient.type, env.recipient.key],
            "m": host.codec.encode(env.message),
            "k": env.kind.value,
            "id": env.message_id,
            "c": env.correlation_id,
            "s": None if env.sender is None else [env.sender.type, env.sender.key],
            "p": None if env.topic is None else [env.topic.type, env.topic.source],
            "t": remaining,
            "h": hops,
        }
        payload = _dumps(body).encode()
        self._check_size(payload, env.recipient)
        return payload

    def _encode_delivery(self, env: Envelope, recipient: AgentId) -> bytes:
        """A publish's payload for one recipient: the shared part is encoded once per publish
        (the recipients of one publish come one after another) and only `"to"` differs."""
        message_id, shared = self._shared
        if message_id != env.message_id or not shared:
            host = self._host
            assert host is not None
            body = {
                "m": host.codec.encode(env.message),
                "k": env.kind.value,
                "id": env.message_id,
                "c": env.correlation_id,
                "s": None if env.sender is None else [env.sender.type, env.sender.key],
                "p": None if env.topic is None else [env.topic.type, env.topic.source],
                "t": None,
                "h": 0,
            }
            shared = json.dumps(body, separators=(",", ":")).encode()[1:]
            self._shared = (env.message_id, shared)
        to = self._ids.get(recipient)
        if to is None:
            if len(self._ids) >= _CACHE_LIMIT:
                self._ids.clear()
            ids = json.dumps([recipient.type, recipient.key], separators=(",", ":"))
            to = self._ids[recipient] = b'{"to":' + ids.encode() + b","
        payload = to + shared
        self._check_size(payload, recipient)
        return payload

    def _check_size(self, payload: bytes, agent_id: AgentId) -> None:
        limit = self._nc.max_payload if self._nc is not None else 1024 * 1024
        if len(payload) > limit - 512:  # room for the subject and headers
            raise PayloadTooLargeError(
                f"a message to {agent_id} encodes to {len(payload)} bytes; the server takes at"
                f" most {limit} (send a reference, e.g. an object store key, instead)",
                size=len(payload),
                limit=limit,
            )

    def _decode(
        self,
        body: dict[str, Any],
        reply: asyncio.Future[Any] | None,
        headers: Any = None,
        *,
        opened: bool = False,
    ) -> Envelope:
        """An envelope from a wire body; its message stays encoded (decoded by `_open`) unless
        `opened` (then as `_open` does, in one step: no second envelope on the request path).
        A `traceparent` header makes the handler run under the sender's span."""
        host = self._host
        assert host is not None
        assert self._clock is not None
        remaining = body.get("t")
        deadline = None if remaining is None else self._clock.now() + float(remaining)
        sender, topic = body.get("s"), body.get("p")
        message: Any = body.get("m")
        if opened:
            try:
                message = host.codec.decode(message)
            except SerializationError as exc:
                env = self._decode(body, reply, headers)
                host.reject_inbound(env, DeadLetterReason.UNDELIVERABLE, exc, str(exc))
                raise
        return Envelope(
            message=message,
            kind=_KINDS.get(body["k"]) or Kind(body["k"]),  # (Kind raises on a bad value)
            message_id=str(body["id"]),
            correlation_id=str(body["c"]),
            recipient=self._agent_id(body["to"]),
            topic=None if topic is None else TopicId(*topic),
            sender=None if sender is None else self._agent_id(sender),
            deadline=deadline,
            reply=reply,
            trace=headers.get(TRACEPARENT) if headers else None,
        )

    def _agent_id(self, pair: list[str]) -> AgentId:
        """The id a wire `[type, key]` names, validated once and then reused (the same few
        ids come back on every message)."""
        agent_type, key = pair
        found = self._known.get((agent_type, key))
        if found is None:
            if len(self._known) >= _CACHE_LIMIT:
                self._known.clear()
            found = self._known[agent_type, key] = AgentId(agent_type, key)
        return found

    def _open(self, env: Envelope) -> Envelope:
        """Decode the message; an unknown type is dead-lettered here and raised to the caller."""
        host = self._host
        assert host is not None
        try:
            return replace(env, message=host.codec.decode(env.message))
        except SerializationError as exc:
            host.reject_inbound(env, DeadLetterReason.UNDELIVERABLE, exc, str(exc))
            raise

    # ----------------------------------------------------------------- SEND

    async def send(self, envelope: Envelope) -> Any:
        """Request/reply to the key's owner within the envelope's deadline.

        Raises:
            NoRespondersError: nobody serves the recipient right now (at once, not a timeout).
            DeadlineExceededError: no reply before the deadline (also during an outage).
            PayloadTooLargeError: the message is over the server's max_payload.
            TransportUnavailableError: the connection cannot take the request.
        """
        import nats.errors

        recipient = envelope.recipient
        assert recipient is not None
        assert self._clock is not None
        assert self._host is not None
        hops = 0
        while True:
            if envelope.deadline is None:
                remaining: float | None = None
                timeout = self.request_timeout
            else:
                remaining = timeout = envelope.deadline - self._clock.now()
                if remaining <= 0:
                    raise DeadlineExceededError(
                        f"no reply from {recipient} before the deadline", agent_id=recipient
                    )
            if not self._nc.is_connected:
                # Buffered for the reconnect, it would run after its caller gave up on it.
                raise TransportUnavailableError(
                    f"cannot reach {recipient}: not connected to NATS", agent_id=recipient
                )
            owner = self._route(recipient)
            payload = self._encode(envelope, remaining, hops)
            subject = self._subject("req", owner, recipient)
            task = asyncio.current_task()
            if task is not None:
                self._waiting.setdefault(owner, {})[envelope.message_id] = task
            try:
                msg = await self._request(subject, payload, timeout, _trace_headers(envelope))
            except asyncio.CancelledError:
                if self._worker_lost(envelope.message_id):
                    raise NoRespondersError(
                        f"worker {owner} left the membership before {recipient} replied",
                        agent_id=recipient,
                    ) from None
                # The caller gave up: tell the worker, so the handler's work stops too.
                cancel = f"{self.prefix}.cancel.{owner}"
                self._tasks.spawn(self._nc.publish(cancel, envelope.message_id.encode()))
                raise
            except nats.errors.NoRespondersError:
                raise NoRespondersError(
                    f"no responders for {recipient} (worker {owner} is gone)", agent_id=recipient
                ) from None
            except nats.errors.TimeoutError:
                raise DeadlineExceededError(
                    f"no reply from {recipient} before the deadline", agent_id=recipient
                ) from None
            except (nats.errors.OutboundBufferLimitError, nats.errors.ConnectionClosedError) as exc:
                raise TransportUnavailableError(
                    f"cannot reach {recipient}: {exc!r}", agent_id=recipient
                ) from exc
            finally:
                self._stop_waiting(owner, envelope.message_id)
            reply = json.loads(msg.data)
            if "ok" in reply:
                return self._host.codec.decode(reply["ok"])
            error = reply.get("err") or {}
            if error.get("kind") == _MOVED and hops < self.max_hops:
                moved_to = str(error["owner"])
                if moved_to not in self.membership:
                    # The owner still trusts a lease holder we know is dead: our views of the
                    # membership disagree for a heartbeat or two. Wait for them to agree.
                    await asyncio.sleep(self.heartbeat)
                    continue
                self._owners[recipient] = moved_to
                hops += 1
                continue
            raise error_from_wire(error, recipient)

    async def _request(
        self, subject: str, payload: bytes, timeout: float, headers: dict[str, str] | None
    ) -> Any:
        """`nc.request` on the shared reply inbox, raising the same nats-py errors, with a
        counter token and one timer handle instead of a random token and `wait_for`."""
        import nats.errors

        replies = self._replies
        assert replies is not None
        reply_to, future = replies.expect()
        timer = asyncio.get_running_loop().call_later(timeout, _no_reply, future)
        try:
            await self._nc.publish(subject, payload, reply=reply_to, headers=headers)
            msg = await future
        finally:
            timer.cancel()
            replies.forget(reply_to)
        if msg is None:
            raise nats.errors.TimeoutError
        if no_responders(msg):
            raise nats.errors.NoRespondersError
        return msg

    def _subject(self, verb: str, owner: str, agent_id: AgentId) -> str:
        """`<prefix>.<verb>.<owner>.<type>.<key>`, built once per (verb, owner, key)."""
        key = (verb, owner, agent_id)
        subject = self._subjects.get(key)
        if subject is None:
            if len(self._subjects) >= _CACHE_LIMIT:
                self._subjects.clear()
            subject = f"{self.prefix}.{verb}.{owner}.{agent_tokens(agent_id)}"
            self._subjects[key] = subject
        return subject

    def _stop_waiting(self, owner: str, message_id: str) -> None:
        waiting = self._waiting.get(owner)
        if waiting is not None:
            waiting.pop(message_id, None)
            if not waiting:
                del self._waiting[owner]
        self._lost.discard(message_id)

    def _worker_lost(self, message_id: str) -> bool:
        """True when the request `message_id` was cancelled because its worker died (see
        `_fail_waiting`), not by its caller; that cancellation is then taken back."""
        if message_id not in self._lost:
            return False
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()
        return task.cancelling() == 0  # its caller cancelled it too: that cancellation wins

    def _fail_waiting(self, node: str) -> None:
        """Fail the requests waiting on `node`, which left or died: their callers hear it
        within the membership TTL instead of at their request timeout."""
        for message_id, task in self._waiting.pop(node, {}).items():
            self._lost.add(message_id)
            task.cancel()

    async def _on_request(self, msg: Any) -> None:
        if self._closing:
            await self._respond(msg, {"err": error_to_wire(RuntimeStoppedError("worker stopping"))})
            return
        self._tasks.spawn(self._serve_request(msg))

    async def _on_cancel(self, msg: Any) -> None:
        task = self._serving.get(msg.data.decode())
        if task is not None:
            task.cancel()

    async def _serve_request(self, msg: Any) -> None:
        host = self._host
        assert host is not None
        message_id = None
        try:
            body = json.loads(msg.data)
            message_id = str(body["id"])
            task = asyncio.current_task()
            assert task is not None
            self._serving[message_id] = task
            recipient = self._agent_id(body["to"])
            owner = None if recipient in self._held else await self._acquire(recipient)
            if owner is not None:
                await self._respond(msg, {"err": {"kind": _MOVED, "owner": owner}})
                return
            reply = asyncio.get_running_loop().create_future()
            result = await host.deliver(self._decode(body, reply, msg.headers, opened=True))
            # The reply's wrapper is spliced around the encoded result: one JSON encode and no
            # wrapper dict per request.
            out: dict[str, Any] | bytes = (
                b'{"ok":' + _dumps(host.codec.encode(result)).encode() + b"}"
            )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._respond(
                    msg, {"err": error_to_wire(RuntimeStoppedError("worker stopping"))}
                )
            raise
        except Exception as exc:
            out = {"err": error_to_wire(exc)}
        finally:
            if message_id is not None:
                self._serving.pop(message_id, None)
        await self._respond(msg, out)

    async def _respond(self, msg: Any, reply: dict[str, Any] | bytes) -> None:
        """Publish `reply` (a wire dict, or one already encoded) to the requester."""
        if not msg.reply:
            return
        payload = reply if type(reply) is bytes else _dumps(reply).encode()
        limit = self._nc.max_payload
        if len(payload) > limit:
            error = PayloadTooLargeError(
                f"the reply encodes to {len(payload)} bytes; the server takes at most {limit}",
                size=len(payload),
                limit=limit,
            )
            payload = json.dumps({"err": error_to_wire(error)}).encode()
        try:
            await self._nc.publish(msg.reply, payload)
        except Exception as exc:
            log.warning("nats.reply_failed", error=repr(exc))

    # ----------------------------------------------------------------- feeds

    async def open_feed(self, handler: Callable[[bytes], Awaitable[None]]) -> FeedReader:
        """A live feed this process reads: each payload a writer sends (`send_to_feed` to the
        reader's `subject`) goes to `handler` in order, and the writer waits for it.

        Raises:
            TransportUnavailableError: the connection cannot subscribe.
        """
        try:
            return await open_feed(self._nc, self.prefix, handler)
        except Exception as exc:
            raise TransportUnavailableError(f"cannot open a feed: {exc!r}") from exc

    async def send_to_feed(self, subject: str, payload: bytes) -> bool:
        """Send one payload to a feed and wait for its reader: False when the reader is gone or
        did not take it within `request_timeout` (the caller keeps it for another way back)."""
        return await send_to_feed(self._nc, subject, payload, timeout=self.request_timeout)

    # ----------------------------------------------------------------- TELL

    async def tell(self, envelope: Envelope) -> None:
        """Persist the message in JetStream for the key's owner; returns once the stream has it.

        Raises:
            NoRespondersError: no live worker hosts the recipient's type.
            PayloadTooLargeError: the message is over the server's max_payload.
            TransportUnavailableError: the stream did not acknowledge it in time.
        """
        recipient = envelope.recipient
        assert recipient is not None
        owner = self._route(recipient)
        # One id per delivery: the recipients of one publish share its message id.
        msg_id = f"{envelope.message_id}>{recipient}"
        if envelope.kind is Kind.PUBLISH and self._nc.is_connected:
            await self._publish_pipelined(owner, envelope, msg_id)
        else:
            payload = self._encode(envelope, None)
            await self._publish_tell(owner, recipient, payload, msg_id, envelope.trace)

    async def flush(self) -> None:
        """Return once every pipelined delivery is confirmed by the stream or dead-lettered.

        A publish returns when its deliveries are sent; call this to know they are stored.
        """
        if self._acks is not None:
            await self._acks.wait_empty()

    async def _publish_pipelined(self, owner: str, envelope: Envelope, msg_id: str) -> None:
        """One recipient of a publish: send now, take the stream's ack in the background.

        A publisher never hears about one recipient's failure (it becomes a dead letter), so
        the ack need not hold up the next recipient. At most `max_inflight` acks are pending;
        one that fails or does not come within `publish_timeout` is sent again (the stream
        drops the duplicate by its `Nats-Msg-Id`), `publish_attempts` times in all, and then
        dead-lettered here.
        """
        import nats.errors

        recipient = envelope.recipient
        assert recipient is not None
        acks = self._acks
        assert acks is not None
        payload = self._encode_delivery(envelope, recipient)
        headers = {"Nats-Msg-Id": msg_id}
        if envelope.trace is not None:
            headers[TRACEPARENT] = envelope.trace
        pending = PendingAck(self._subject("tell", owner, recipient), payload, headers, envelope)
        await acks.enter()
        reply_to = acks.add(pending)
        try:
            await self._nc.publish(pending.subject, payload, reply=reply_to, headers=headers)
        except (nats.errors.OutboundBufferLimitError, nats.errors.ConnectionClosedError) as exc:
            acks.withdraw(pending)
            acks.leave()
            raise TransportUnavailableError(
                f"the stream did not take a message for {recipient}: {exc!r}", agent_id=recipient
            ) from exc

    def _ack_failed(self, pending: PendingAck) -> None:
        """A delivery's ack failed or timed out: send it again, or dead-letter it."""
        if pending.attempts < self.publish_attempts and not self._closing:
            self._tasks.spawn(self._resend(pending))
        else:
            self._report_unconfirmed(pending)
            assert self._acks is not None
            self._acks.leave()

    async def _resend(self, pending: PendingAck) -> None:
        acks = self._acks
        assert acks is not None
        reply_to = acks.add(pending)
        try:
            await self._nc.publish(
                pending.subject, pending.payload, reply=reply_to, headers=pending.headers
            )
        except BaseException:
            if pending.token:  # not yet reported by `aclose`
                acks.withdraw(pending)
                self._report_unconfirmed(pending)
                acks.leave()
            raise

    def _report_unconfirmed(self, pending: PendingAck) -> None:
        envelope: Envelope = pending.envelope
        log.warning(
            "nats.publish_unconfirmed",
            agent=str(envelope.recipient),
            message_id=envelope.message_id,
            attempts=pending.attempts,
        )
        if self._host is not None:
            error = TransportUnavailableError(
                f"the stream did not confirm a message for {envelope.recipient}",
                agent_id=envelope.recipient,
            )
            self._host.reject_inbound(envelope, DeadLetterReason.UNDELIVERABLE, error, str(error))

    async def _publish_tell(
        self, owner: str, agent_id: AgentId, payload: bytes, msg_id: str, trace: str | None = None
    ) -> None:
        subject = f"{self.prefix}.tell.{owner}.{agent_tokens(agent_id)}"
        headers = {"Nats-Msg-Id": msg_id}
        if trace is not None:
            headers[TRACEPARENT] = trace
        try:
            await self._js.publish(subject, payload, headers=headers)
        except Exception as exc:
            raise TransportUnavailableError(
                f"the stream did not take a message for {agent_id}: {exc!r}", agent_id=agent_id
            ) from exc

    async def _pull_loop(self, sub: Any, node: str) -> None:
        import nats.errors

        backoff = self.reconnect_wait
        while not self._closing:
            if not self._connected.is_set():
                await self._connected.wait()
            room = max(1, min(64, self._free_slots()))
            try:
                msgs = await sub.fetch(batch=room, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:
                log.warning("nats.fetch_failed", consumer=node, error=repr(exc))
                await asyncio.sleep(backoff)  # retry backoff after a broker fault
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = self.reconnect_wait
            for msg in msgs:
                await self._slots.acquire()
                try:
                    await self._admit_tell(msg)
                except BaseException:
                    self._slots.release()
                    raise

    def _free_slots(self) -> int:
        return self._slots._value

    async def _admit_tell(self, msg: Any) -> None:
        """Route one stream message: deliver here, forward to its owner, or dead-letter it.

        Runs in the pull loop, one message at a time, so deliveries enter mailboxes in stream
        order; the wait for the handler happens in a task of its own.
        """
        host = self._host
        assert host is not None
        try:
            body = json.loads(msg.data)
            env = self._decode(body, asyncio.get_running_loop().create_future(), msg.headers)
            assert env.recipient is not None
        except Exception as exc:
            log.error("nats.tell_malformed", error=repr(exc))
            await self._settle(msg, "term")
            return
        attempts = msg.metadata.num_delivered
        try:
            owner = None if env.recipient in self._held else await self._acquire(env.recipient)
        except (NoRespondersError, TransportUnavailableError) as exc:
            # Nobody can take it right now (no live host, KV unreachable): try again later,
            # and dead-letter it only once that has failed for long.
            if attempts < self.max_redeliveries:
                await self._settle(msg, "retry")
            else:
                host.reject_inbound(env, DeadLetterReason.UNDELIVERABLE, exc, str(exc))
                await self._settle(msg, "term")
            return
        if owner is not None:
            hops = int(body.get("h", 0)) + 1
            if hops > self.max_hops:
                if attempts == 1:  # views of the membership disagree: wait, they converge
                    await self._settle(msg, "retry")
                    return
                hops = 1  # waited once already: pass it on afresh
            body["h"] = hops
            payload = json.dumps(body, separators=(",", ":")).encode()
            seq = msg.metadata.sequence.stream
            try:
                await self._publish_tell(
                    owner, env.recipient, payload, f"fwd-{seq}-{env.message_id}", env.trace
                )
            except TransportUnavailableError:
                await self._settle(msg, "nak")
                return
            await self._settle(msg, "ack")
            return
        try:
            opened = self._open(env)
        except SerializationError:
            await self._settle(msg, "term")
            return
        if msg.metadata.num_delivered > 1:
            self.redelivered += 1
        try:
            await host.deliver(opened)
        except Exception as exc:
            await self._settle(msg, _disposition(exc, env))
            return
        self._tasks.spawn(self._finish_tell(msg, opened))

    async def _finish_tell(self, msg: Any, env: Envelope) -> None:
        """Wait for the handler, keeping the message alive in JetStream; then ack it."""
        reply = env.reply
        assert reply is not None
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(reply), self.ack_wait / 2)
            except TimeoutError:
                with contextlib.suppress(Exception):
                    await msg.in_progress()
                continue
            except Exception as exc:
                await self._settle(msg, _disposition(exc, env))
            else:
                self.delivered_tells += 1
                await self._settle(msg, "ack")
            return

    async def _settle(self, msg: Any, how: str) -> None:
        self._slots.release()
        try:
            if how == "ack":
                await msg.ack()
            elif how == "nak":
                await msg.nak()
            elif how == "retry":
                await msg.nak(delay=self.reconnect_wait * 4)
            else:
                await msg.term()
        except Exception as exc:  # the broker redelivers it after ack_wait
            log.warning("nats.settle_failed", how=how, error=repr(exc))


def _no_reply(future: asyncio.Future[Any]) -> None:
    """A request's timer ran out: its future resolves to None (a cancel means the caller's)."""
    if not future.done():
        future.set_result(None)


def _trace_headers(env: Envelope) -> dict[str, str] | None:
    """The NATS headers that carry the sender's trace context (none when tracing is off)."""
    return None if env.trace is None else {TRACEPARENT: env.trace}


def _disposition(exc: BaseException, env: Envelope) -> str:
    """What to tell JetStream about a tell that was not handled here."""
    if isinstance(exc, RuntimeStoppedError):
        return "nak"  # this worker is stopping: let the key's next owner have it
    if isinstance(exc, TransportUnavailableError) or isinstance(
        exc.__cause__, TransportUnavailableError | RuntimeStoppedError
    ):
        # The handler could not pass its work on (broker away, this runtime stopping): run it
        # again later, here or on the key's next owner.
        return "retry"
    log.info(
        "message.dead_lettered",
        agent=str(env.recipient),
        message_id=env.message_id,
        reason="handler_failed",
        error=type(exc).__name__,
    )
    return "term"


def _now() -> float:
    return asyncio.get_running_loop().time()
