"""The workloads behind each scenario. A workload owns its resources (`async with`), offers one
operation `op(index, recorder, due) -> units`, and knows its default size per load level."""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Self

import anyio
import pydantic

from moot.runtime import Agent, AgentId, Envelope, Runtime, TopicId, TypeSubscription, handler

from ._config import LatencyDistribution
from ._errors import BenchEnvironmentError, BenchRunError
from ._stats import Recorder

if TYPE_CHECKING:
    from types import TracebackType

    from moot.agents import ConversableAgent
    from moot.executors import Executor, ExecutorSession
    from moot.groupchat import GroupChatManager
    from moot.models import ModelClient

    from ._config import BenchConfig


class Workload(ABC):
    """One measured thing: a scenario has one or more (the runtime scenario has three)."""

    scenario: ClassVar[str]
    name: ClassVar[str]
    title: ClassVar[str]
    unit: ClassVar[str]
    metric: ClassVar[str]

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.notes: list[str] = []
        self.recorder = Recorder()
        self._stack = contextlib.AsyncExitStack()

    def default_ops(self, concurrency: int) -> int:
        return 200

    def default_warmup(self, ops: int) -> int:
        return max(1, ops // 10)

    @classmethod
    def available(cls, config: BenchConfig) -> bool:
        """Whether this run includes the workload: an optional one can be left out."""
        return True

    async def setup(self) -> None:  # noqa: B027 - most workloads need a runtime only
        """Start what the workload needs; resources go on `self._stack`."""

    @abstractmethod
    async def op(self, index: int, recorder: Recorder, due: float) -> int:
        """Do one operation, record its latencies, return the units completed."""

    def level_extra(self, units: int) -> dict[str, float]:
        """Figures of the level just measured beyond the common ones."""
        return {}

    def note(self, text: str) -> None:
        self.notes.append(text)

    def record(self, metric: str, seconds: float) -> None:
        """Record into the current level's recorder (for callbacks of stubs)."""
        self.recorder.latency(metric, seconds)

    async def __aenter__(self) -> Self:
        try:
            await self.setup()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()


def _rss_now() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------- runtime


class _Ping:
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class _Ponger(Agent):
    @handler
    async def on_ping(self, message: _Ping, ctx: Envelope) -> int:
        return message.n


class _Fanout:
    """Outstanding W2 publishes: message number -> (subscribers left, event when all handled)."""

    def __init__(self) -> None:
        self.pending: dict[int, list[Any]] = {}

    def delivered(self, n: int) -> None:
        entry = self.pending.get(n)
        if entry is not None:
            entry[0] -= 1
            if entry[0] == 0:
                entry[1].set()


class _Sink(Agent):
    fanout: ClassVar[_Fanout]

    @handler
    async def on_ping(self, message: _Ping, ctx: Envelope) -> None:
        self.fanout.delivered(message.n)


class RequestReply(Workload):
    scenario, name, title = "runtime", "w1", "W1 request/reply (runtime.send)"
    unit, metric = "requests", "request"
    KEYS = 16

    def default_ops(self, concurrency: int) -> int:
        return 2000

    async def setup(self) -> None:
        self.runtime = await self._stack.enter_async_context(Runtime())
        self.runtime.register("ponger", _Ponger)
        self.note(f"requests go to {self.KEYS} ponger agents (key = index mod {self.KEYS})")

    async def op(self, index: int, recorder: Recorder, due: float) -> int:
        await self.runtime.send(_Ping(index), AgentId("ponger", str(index % self.KEYS)), timeout=30)
        recorder.latency(self.metric, time.perf_counter() - due)
        return 1


class Fanout(Workload):
    scenario, name, title = "runtime", "w2", "W2 fan-out (runtime.publish)"
    unit, metric = "deliveries", "fanout"

    def default_ops(self, concurrency: int) -> int:
        return 500

    async def setup(self) -> None:
        self.runtime = await self._stack.enter_async_context(
            Runtime(default_mailbox_capacity=10_000)
        )
        self.fanout = _Fanout()
        sink = type("_BoundSink", (_Sink,), {"fanout": self.fanout})
        for k in range(self.config.subscribers):
            self.runtime.register(f"sink{k}", sink)
            self.runtime.subscribe(TypeSubscription("bench", f"sink{k}"))
        self.topic = TopicId("bench", "w2")
        self.note(
            f"each publish reaches {self.config.subscribers} subscribers; latency = all handled"
        )

    async def op(self, index: int, recorder: Recorder, due: float) -> int:
        done = anyio.Event()
        self.fanout.pending[index] = [self.config.subscribers, done]
        try:
            await self.runtime.publish(_Ping(index), self.topic)
            with anyio.fail_after(30):
                await done.wait()
        finally:
            del self.fanout.pending[index]
        recorder.latency(self.metric, time.perf_counter() - due)
        return self.config.subscribers


class Activation(Workload):
    scenario, name, title = "runtime", "w4", "W4 activation (first message to a new agent)"
    unit, metric = "activations", "activation"

    def default_ops(self, concurrency: int) -> int:
        return 2000

    async def setup(self) -> None:
        self.runtime = await self._stack.enter_async_context(Runtime())
        self.runtime.register("idle", _Ponger)
        self._serial = 0
        self._rss_before = _rss_now()

    async def op(self, index: int, recorder: Recorder, due: float) -> int:
        self._serial += 1
        await self.runtime.send(_Ping(index), AgentId("idle", f"k{self._serial}"), timeout=30)
        recorder.latency(self.metric, time.perf_counter() - due)
        return 1

    def level_extra(self, units: int) -> dict[str, float]:
        now = _rss_now()
        grown, self._rss_before = now - self._rss_before, now
        return {"rss_growth_per_activation_bytes": grown / units if units else 0.0}


# ------------------------------------------------------------------------------- chats


def _stub_reply(name: str) -> Any:
    def reply(n: int, messages: Any) -> str:
        return f"{name} here, answer {n}: the plan still holds."

    return reply


class _ChatBase(Workload):
    unit, metric = "turns", "turn"
    runtime: Runtime
    manager: GroupChatManager

    def default_ops(self, concurrency: int) -> int:
        return max(2, 2 * concurrency)

    def default_warmup(self, ops: int) -> int:
        return 1

    def _model(self, name: str, seed: int, reply: Any) -> ModelClient:
        from ._stub import stub_model_client

        return stub_model_client(
            LatencyDistribution.parse(self.config.latency),
            seed=seed,
            reply=reply,
            on_latency=self.record,
        )

    def _manager(self, agents: list[ConversableAgent]) -> GroupChatManager:
        from moot.groupchat import (
            GroupChat,
            GroupChatManager,
        )

        group = GroupChat(
            agents, max_round=self.config.turns + 1, speaker_selection_method="round_robin"
        )
        return GroupChatManager(group, name="bench_manager", silent=True)

    async def op(self, index: int, recorder: Recorder, due: float) -> int:
        """One group chat, streamed: a turn's latency is the gap between two messages."""
        from moot.groupchat import MessageEvent

        self.recorder = recorder
        turns = 0
        last = time.perf_counter()
        stream = self.manager.run_stream(
            f"Task {index}: add up a range of numbers.", runtime=self.runtime
        )
        async for event in stream:
            if isinstance(event, MessageEvent):
                now = time.perf_counter()
                if event.turn > 0:
                    turns += 1
                    recorder.latency("turn", now - last)
                last = now
        return turns


class Chats(_ChatBase):
    scenario, name = "chats", "w3"
    title = "W3 concurrent group chats (round robin, model stub)"

    async def setup(self) -> None:
        from moot.agents import ConversableAgent

        self.runtime = await self._stack.enter_async_context(Runtime())
        self.agents = [
            ConversableAgent(
                f"agent{k}",
                system_message="You are one voice in a benchmark chat.",
                human_input_mode="NEVER",
                max_consecutive_auto_reply=1_000_000,
                model_client=self._model(
                    f"agent{k}", self.config.seed + k, _stub_reply(f"agent{k}")
                ),
            )
            for k in range(self.config.agents)
        ]
        self.manager = self._manager(self.agents)
        self.note(
            f"{self.config.agents} agents x {self.config.turns} turns per chat, round robin; model"
            f" stub latency {self.config.latency}; agent objects shared by all chats"
        )


# ------------------------------------------------------------------------------- executor


CODE = "total = sum(i * i for i in range(2000))\nprint(total)\n"


async def open_executor(
    config: BenchConfig, stack: contextlib.AsyncExitStack, size: int
) -> tuple[Executor, str]:
    """The executor the config asks for, started on `stack`, and its name.

    Raises:
        BenchEnvironmentError: `docker` was asked for and no engine (or image) is there.
    """
    from moot.executors import (
        DockerExecutor,
        DockerUnavailableError,
        ImageError,
        LocalExecutor,
        image_exists,
        image_tag,
        open_docker,
    )

    kind = config.executor
    if kind in ("auto", "docker"):
        try:
            docker = await open_docker()
        except DockerUnavailableError as exc:
            if kind == "docker":
                raise BenchEnvironmentError(str(exc)) from exc
            return await stack.enter_async_context(LocalExecutor()), "local (no Docker engine)"
        try:
            has_image = await image_exists(docker, image_tag())
        finally:
            await docker.close()
        if not has_image:
            if kind == "docker":
                raise BenchEnvironmentError(
                    f"the sandbox image {image_tag()} is not built; run `moot image build`"
                )
            return await stack.enter_async_context(LocalExecutor()), "local (no sandbox image)"
        try:
            executor = await stack.enter_async_context(
                DockerExecutor(pool_size=size, image=image_tag())
            )
        except (DockerUnavailableError, ImageError) as exc:
            raise BenchEnvironmentError(str(exc)) from exc
        return executor, f"docker (pool of {size})"
    return await stack.enter_async_context(LocalExecutor()), "local"


class ExecutorRuns(Workload):
    scenario, name, title = "executor", "runs", "Code runs (executor sessions)"
    unit, metric = "runs", "code_run"
    POOL_LIMIT = 8

    def default_ops(self, concurrency: int) -> int:
        return max(40, 8 * concurrency)

    async def setup(self) -> None:
        from moot.executors import CodeBlock

        sessions = min(max(self.config.concurrency), self.POOL_LIMIT)
        self.executor, self.kind = await open_executor(self.config, self._stack, sessions)
        self.sessions: list[ExecutorSession] = [
            await self._stack.enter_async_context(self.executor.session()) for _ in range(sessions)
        ]
        self.block = CodeBlock(CODE, "python")
        self.note(f"executor: {self.kind}; {sessions} sessions, runs take the next free one")
        self._free: list[ExecutorSession] = list(self.sessions)
        self._ready = anyio.Semaphore(len(self.sessions))

    async def op(self, index: int, recorder: Recorder, due: float) -> int:
        async with self._ready:
            session = self._free.pop()
            try:
                result = await session.run(self.block, timeout=60)
            finally:
                self._free.append(session)
        if result.exit_code != 0:
            raise BenchRunError(f"exit code {result.exit_code}: {result.stderr[-200:]}")
        recorder.latency(self.metric, time.perf_counter() - due)
        return 1


# ------------------------------------------------------------------------------- model client


class ModelCalls(Workload):
    scenario, name, title = "model", "calls", "Model client calls (scripted HTTP server)"
    unit, metric = "calls", "model_call"

    async def setup(self) -> None:
        from moot.models import client_from_llm_config
        from moot.testing import Reply, ScriptedModelServer

        distribution = LatencyDistribution.parse(self.config.latency)
        rng = random.Random(self.config.seed)

        def answer(request: Any) -> Reply:
            return Reply("pong " * 8, latency=distribution.sample(rng))

        server = await self._stack.enter_async_context(ScriptedModelServer(default=answer))
        self.client = client_from_llm_config(
            {"config_list": server.config_list(), "cache_seed": None}
        )
        self._stack.push_async_callback(self.client.aclose)
        self.note(
            f"server on 127.0.0.1 in this process (CPU per call includes its share), reply"
            f" latency {self.config.latency}"
        )

    async def op(self, index: int, recorder: Recorder, due: float) -> int:
        from moot.models import ModelRequest

        request = ModelRequest(messages=[{"role": "user", "content": f"ping {index}"}])
        await self.client.create(request)
        recorder.latency(self.metric, time.perf_counter() - due)
        return 1


# ------------------------------------------------------------------------------- mixed


def _coder_reply(n: int, messages: Any) -> str:
    last = str(messages[-1].get("content") or "") if messages else ""
    if "exitcode:" in last:
        return "The output looks right."
    return f"Running it:\n```python\nprint(sum(range({n * 100})))\n```"


class Mixed(_ChatBase):
    scenario, name = "mixed", "code-chats"
    title = "Chats that run code (model stub + executor)"

    async def setup(self) -> None:
        from moot.agents import ConversableAgent

        from ._stub import TimedExecutor

        self.runtime = await self._stack.enter_async_context(Runtime())
        size = min(max(self.config.concurrency), ExecutorRuns.POOL_LIMIT)
        executor, kind = await open_executor(self.config, self._stack, size)
        coder = ConversableAgent(
            "coder",
            human_input_mode="NEVER",
            max_consecutive_auto_reply=1_000_000,
            model_client=self._model("coder", self.config.seed, _coder_reply),
        )
        runner = ConversableAgent(
            "runner",
            human_input_mode="NEVER",
            max_consecutive_auto_reply=1_000_000,
            code_execution_config=TimedExecutor(executor, self.record),
        )
        self.manager = self._manager([coder, runner])
        self.note(
            f"two agents (coder, runner) x {self.config.turns} turns; executor: {kind}; model"
            f" stub latency {self.config.latency}"
        )


# ------------------------------------------------------------------------------- structured


class CityFacts(pydantic.BaseModel):
    """The answer format of the structured-output scenario."""

    country: str
    city: str
    population: int


COUNTRIES = (
    "France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "India", "Mexico", "Egypt", "Peru",
    "Italy", "Chile", "Spain", "Ghana", "Nepal", "Chad", "Iran", "Cuba", "Fiji", "Oman",
)  # fmt: skip
"""Twenty prompts' subjects: chat `i` asks about the capital of `COUNTRIES[i % 20]`."""


def embedded_model_absent() -> str | None:
    """Why the embedded model cannot run here, or None when it can."""
    import importlib.util

    from moot.models import cached_model

    if cached_model() is None:
        return "the embedded model is not cached (`moot model fetch`)"
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (`moot model install-runtime`)"
    return None


class _StructuredBase(Workload):
    """Chats whose assistant answers in `CityFacts`: each op is one answer, validated and
    repaired by the agent; the level reports the schema-valid rate and repairs per answer."""

    unit, metric = "answers", "answer"

    def _agents(self, client: ModelClient) -> None:
        from moot.agents import AssistantAgent, UserProxyAgent

        self.assistant = AssistantAgent(
            "assistant",
            system_message="You answer questions about countries as JSON.",
            model_client=client,
            response_format=CityFacts,
            max_consecutive_auto_reply=1_000_000,
        )
        self.user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        self._counts = [0, 0, 0, 0]  # answers, schema-valid, valid at once, repairs

    async def op(self, index: int, recorder: Recorder, due: float) -> int:
        from moot.models import StructuredOutputError

        country = COUNTRIES[index % len(COUNTRIES)]
        valid = True
        try:
            result = await self.user.a_initiate_chat(
                self.assistant,
                message=f"Task {index}: what is the capital of {country}, and its population?",
                max_turns=1,
                silent=True,
            )
            calls = result.cost.calls
            valid = isinstance(result.output, CityFacts)
        except StructuredOutputError as exc:
            calls, valid = len(exc.errors), False
        recorder.latency(self.metric, time.perf_counter() - due)
        if recorder.recording:
            counts = self._counts
            counts[0] += 1
            counts[1] += valid
            counts[2] += valid and calls == 1
            counts[3] += max(0, calls - 1)
        return 1

    def level_extra(self, units: int) -> dict[str, float]:
        answers, valid, at_once, repairs = self._counts
        self._counts = [0, 0, 0, 0]
        if not answers:
            return {}
        return {
            "schema_valid_rate": valid / answers,
            "valid_first_try_rate": at_once / answers,
            "repairs_per_answer": repairs / answers,
        }


class StructuredScripted(_StructuredBase):
    scenario, name = "structured", "scripted"
    title = "Structured output: response_format answers (scripted HTTP server)"

    def default_ops(self, concurrency: int) -> int:
        return max(20, 4 * concurrency)

    async def setup(self) -> None:
        from moot.models import client_from_llm_config
        from moot.testing import RecordedRequest, Reply, ScriptedModelServer

        distribution = LatencyDistribution.parse(self.config.latency)
        rng = random.Random(self.config.seed)
        share, seed = self.config.invalid_share, self.config.seed

        def answer(request: RecordedRequest) -> Reply:
            latency = distribution.sample(rng)
            prompt = str(request.messages[0].get("content") or "") if request.messages else ""
            for message in request.messages:
                if message.get("role") == "user":
                    prompt = str(message.get("content") or "")
                    break
            task = int(prompt.split(":", 1)[0].removeprefix("Task ") or 0)
            country = prompt.rsplit("capital of ", 1)[-1].split(",", 1)[0]
            repair = str(request.messages[-1].get("content") or "").startswith("That answer")
            # whether a chat's first answer is invalid depends on its task number alone
            if not repair and random.Random(seed * 1_000_003 + task).random() < share:
                return Reply(json.dumps({"country": country, "city": "?"}), latency=latency)
            facts = {"country": country, "city": f"{country} City", "population": 1000 + task}
            return Reply(json.dumps(facts), latency=latency)

        server = await self._stack.enter_async_context(ScriptedModelServer(default=answer))
        client = client_from_llm_config({"config_list": server.config_list(), "cache_seed": None})
        self._stack.push_async_callback(client.aclose)
        self._agents(client)
        self.note(
            f"{share:.0%} of first answers miss a required field (seeded); one repair fixes"
            f" them; reply latency {self.config.latency}"
        )
        absent = embedded_model_absent() if self.config.embedded else "left out (--no-embedded)"
        if absent is not None:
            self.note(f"embedded model not measured: {absent}")


class StructuredEmbedded(_StructuredBase):
    scenario, name = "structured", "embedded"
    title = "Structured output: the embedded model under the schema grammar"

    def default_ops(self, concurrency: int) -> int:
        # the engine answers one chat at a time: all twenty prompts once, then one per worker
        return len(COUNTRIES) if concurrency <= 1 else concurrency

    def default_warmup(self, ops: int) -> int:
        return 1

    @classmethod
    def available(cls, config: BenchConfig) -> bool:
        return config.embedded and embedded_model_absent() is None

    async def setup(self) -> None:
        from moot.models import LOCAL_MODEL_NAME, LocalModelClient

        client = LocalModelClient()
        self._stack.push_async_callback(client.aclose)
        self._agents(client)
        self.note(
            f"{LOCAL_MODEL_NAME} on llama.cpp in this process, one generation at a time;"
            " the JSON schema becomes a grammar, so answers are held to it"
        )


WORKLOADS: dict[str, tuple[type[Workload], ...]] = {
    "runtime": (RequestReply, Fanout, Activation),
    "chats": (Chats,),
    "executor": (ExecutorRuns,),
    "model": (ModelCalls,),
    "mixed": (Mixed,),
    "structured": (StructuredScripted, StructuredEmbedded),
}
