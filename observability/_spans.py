"""The spans moot opens, one helper per kind, and the metrics recorded as they end.

Each helper returns a context manager yielding a `Step` to add attributes and results to. With no
SDK configured the OpenTelemetry API hands back a non-recording span and nothing else happens;
with `MOOT_OTEL_BYPASS=1` not even that (see `_switch`).
"""

from __future__ import annotations

import asyncio
import os
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Self

from opentelemetry import context, metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _semconv as sc
from ._switch import SWITCH

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from contextvars import Token
    from types import TracebackType

    from opentelemetry.util.types import AttributeValue

    _Callback = Callable[[metrics.CallbackOptions], Iterable[metrics.Observation]]

_tracer = trace.get_tracer("moot")
_meter = metrics.get_meter("moot")

_token_usage = _meter.create_histogram(
    sc.METRIC_TOKEN_USAGE, unit="{token}", description="Tokens per model call, by type"
)
_duration = _meter.create_histogram(
    sc.METRIC_OPERATION_DURATION, unit="s", description="Wall time of one model call"
)
# The two per-turn and per-chat numbers are plain counts here, read by the SDK when it collects
# (observable instruments): an SDK `add()` with an attribute dict costs about as much as a
# turn's own work, a dict increment next to nothing. The exported data is the same sums.
_turn_counts: dict[str, int] = {}
_running_now = [0]
_cost = _meter.create_counter(sc.METRIC_COST, unit="USD", description="Model spend in dollars")
_dead_letters = _meter.create_counter(
    sc.METRIC_DEAD_LETTERS, unit="{message}", description="Messages dead-lettered, by reason"
)
_sandbox_duration = _meter.create_histogram(
    sc.METRIC_SANDBOX_RUN_DURATION, unit="s", description="Wall time of one code block run"
)

_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


class _Content:
    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = os.environ.get(_CONTENT_ENV, "").lower() in ("1", "true")


CONTENT = _Content()
"""Whether message content goes on spans (off unless the user opts in)."""


class Step:
    """One open span: `set` adds an attribute, `event` a timestamped event, `fail` an error."""

    __slots__ = ("_attrs", "_span", "_started", "_token")

    def __init__(
        self,
        name: str,
        kind: SpanKind,
        attrs: dict[str, AttributeValue],
        parent: context.Context | None = None,
    ) -> None:
        self._span = _tracer.start_span(name, context=parent, kind=kind, attributes=attrs)
        self._token: Token[context.Context] | None = None
        self._attrs = attrs
        self._started = time.perf_counter()

    @property
    def recording(self) -> bool:
        """True when an SDK records this span (so computing costly attributes is worth it)."""
        return self._span.is_recording()

    def set(self, key: str, value: AttributeValue | None) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def event(self, name: str, attrs: Mapping[str, AttributeValue] | None = None) -> None:
        self._span.add_event(name, attrs)

    def content(self, key: str, messages: Any) -> None:
        """Record message content under `key`, only when the user opted in."""
        if CONTENT.on and self._span.is_recording():
            import json

            self._span.set_attribute(key, json.dumps(messages, default=str))

    def __enter__(self) -> Self:
        # A sampled-out span still has a valid context: its children must see it (and be
        # sampled out too). The API's no-op span has none, and nothing is attached.
        if self._span.get_span_context().is_valid:
            self._token = context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if exc is not None and span.is_recording():
            _fail(span, exc)
        self._finish(exc)
        span.end()
        if self._token is not None:
            context.detach(self._token)

    def _finish(self, exc: BaseException | None) -> None:
        """Metrics recorded as the span ends (per kind)."""


def _fail(span: trace.Span, exc: BaseException) -> None:
    """Mark `span` as ended by `exc` (a cancellation is an error named `cancelled`)."""
    if isinstance(exc, asyncio.CancelledError):
        span.add_event(sc.EVENT_CANCELLED)
        span.set_attribute(sc.ERROR_TYPE, "cancelled")
        span.set_status(Status(StatusCode.ERROR, "cancelled"))
    else:
        span.record_exception(exc)
        span.set_attribute(sc.ERROR_TYPE, type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))


class _Null:
    """The bypass: every helper yields this and nothing is called."""

    __slots__ = ()
    recording = False

    def set(self, key: str, value: Any) -> None:
        pass

    def event(self, name: str, attrs: Any = None) -> None:
        pass

    def content(self, key: str, messages: Any) -> None:
        pass

    def response(self, *args: Any, **kwargs: Any) -> None:
        pass

    def result(self, *args: Any, **kwargs: Any) -> None:
        pass

    def chosen(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        pass


NULL: Any = _Null()


# ----------------------------------------------------------------- chats and turns


class _Workflow(Step):
    __slots__ = ()

    def __enter__(self) -> Self:
        _running_now[0] += 1
        return super().__enter__()

    def _finish(self, exc: BaseException | None) -> None:
        _running_now[0] -= 1


def workflow(kind: str, conversation_id: str, name: str | None = None) -> Step:
    """The span of one whole chat (`invoke_workflow`): a group chat or a two-agent chat."""
    if not SWITCH.active:
        return NULL  # type: ignore[no-any-return]
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW,
        sc.GEN_AI_CONVERSATION_ID: conversation_id,
        sc.MOOT_WORKFLOW_KIND: kind,
    }
    if name:
        attrs[sc.GEN_AI_AGENT_NAME] = name
    title = f"{sc.OP_INVOKE_WORKFLOW} {name}" if name else sc.OP_INVOKE_WORKFLOW
    return _Workflow(title, SpanKind.INTERNAL, attrs)


class _Turn(Step):
    __slots__ = ()

    def _finish(self, exc: BaseException | None) -> None:
        name = str(self._attrs[sc.GEN_AI_AGENT_NAME])
        _turn_counts[name] = _turn_counts.get(name, 0) + 1


def agent_turn(name: str, conversation_id: str, agent_id: str | None = None) -> Step:
    """One agent's turn in a chat (`invoke_agent {name}`)."""
    if not SWITCH.active:
        return NULL  # type: ignore[no-any-return]
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT,
        sc.GEN_AI_AGENT_NAME: name,
        sc.GEN_AI_CONVERSATION_ID: conversation_id,
    }
    if agent_id is not None:
        attrs[sc.GEN_AI_AGENT_ID] = agent_id
    return _Turn(f"{sc.OP_INVOKE_AGENT} {name}", SpanKind.INTERNAL, attrs)


# ----------------------------------------------------------------- model calls


class ModelCall(Step):
    """A `chat {model}` span; `response(...)` records what came back."""

    __slots__ = ("_cached", "_metric_attrs", "_tokens")

    def __init__(
        self,
        name: str,
        kind: SpanKind,
        attrs: dict[str, AttributeValue],
        parent: context.Context | None = None,
        *,
        cached: bool = False,
    ) -> None:
        super().__init__(name, kind, attrs, parent)
        self._metric_attrs: dict[str, AttributeValue] = {
            k: v for k, v in attrs.items() if k != sc.SERVER_PORT
        }
        self._tokens: tuple[int, int] | None = None
        self._cached = cached

    def response(
        self,
        *,
        model: str | None,
        input_tokens: int,
        output_tokens: int,
        finish_reason: str | None,
        cost: float,
        cached: bool = False,
    ) -> None:
        span = self._span
        if model:
            span.set_attribute(sc.GEN_AI_RESPONSE_MODEL, model)
            self._metric_attrs[sc.GEN_AI_RESPONSE_MODEL] = model
        span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
        span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
        if finish_reason:
            span.set_attribute(sc.GEN_AI_RESPONSE_FINISH_REASONS, (finish_reason,))
        span.set_attribute(sc.MOOT_COST, 0.0 if self._cached else cost)
        if cached or self._cached:
            span.set_attribute(sc.MOOT_CACHED, True)
        if self._cached:  # nothing was spent: no tokens, duration or cost in the metrics
            return
        self._tokens = (input_tokens, output_tokens)
        if cost:
            _cost.add(cost, {sc.GEN_AI_REQUEST_MODEL: str(self._attrs[sc.GEN_AI_REQUEST_MODEL])})

    def _finish(self, exc: BaseException | None) -> None:
        if self._cached:
            return
        attrs = self._metric_attrs
        if exc is not None:
            attrs = {**attrs, sc.ERROR_TYPE: type(exc).__qualname__}
        _duration.record(time.perf_counter() - self._started, attrs)
        if self._tokens is not None:
            _token_usage.record(self._tokens[0], {**attrs, sc.GEN_AI_TOKEN_TYPE: "input"})
            _token_usage.record(self._tokens[1], {**attrs, sc.GEN_AI_TOKEN_TYPE: "output"})


def model_call(
    model: str,
    *,
    provider: str,
    server: str | None = None,
    port: int | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> ModelCall:
    """One model call (`chat {model}`), retries and rate-limit waits included, as events.
    Inside a speaker selection it is that selection's child (and counted as a selector call)."""
    if not SWITCH.active:
        return NULL  # type: ignore[no-any-return]
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
        sc.provider_attribute(): provider,
        sc.GEN_AI_REQUEST_MODEL: model,
    }
    if server:
        attrs[sc.SERVER_ADDRESS] = server
    if port:
        attrs[sc.SERVER_PORT] = port
    if max_tokens is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    if temperature is not None:
        attrs[sc.GEN_AI_REQUEST_TEMPERATURE] = temperature
    return ModelCall(f"{sc.OP_CHAT} {model}", SpanKind.CLIENT, attrs, _selection_parent())


def cached_model_call(model: str, *, provider: str | None = None) -> ModelCall:
    """A model answer served from moot's response cache (`chat {model}`, `moot.model.cached`):
    no server attributes, next to no duration, and no token, duration or cost metrics, since
    nothing was spent; every answer an agent gets is still a span."""
    if not SWITCH.active:
        return NULL  # type: ignore[no-any-return]
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.MOOT_CACHED: True,
    }
    if provider:
        attrs[sc.provider_attribute()] = provider
    return ModelCall(
        f"{sc.OP_CHAT} {model}", SpanKind.CLIENT, attrs, _selection_parent(), cached=True
    )


def event(name: str, attrs: Mapping[str, AttributeValue | None]) -> None:
    """Add an event to the current span (a retry, a rate-limit wait); None values are left out."""
    if not SWITCH.propagate:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, {k: v for k, v in attrs.items() if v is not None})


# ----------------------------------------------------------------- tools and code


def tool_call(name: str, call_id: str | None = None) -> Step:
    """One tool call (`execute_tool {name}`)."""
    if not SWITCH.active:
        return NULL  # type: ignore[no-any-return]
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
        sc.GEN_AI_TOOL_NAME: name,
    }
    if call_id:
        attrs[sc.GEN_AI_TOOL_CALL_ID] = call_id
    return Step(f"{sc.OP_EXECUTE_TOOL} {name}", SpanKind.INTERNAL, attrs)


class CodeRun(Step):
    """An `execute_code {language}` span; `result(...)` records how the block ended."""

    __slots__ = ()

    def result(
        self,
        *,
        exit_code: int,
        timed_out: bool,
        oom_killed: bool,
        duration_s: float,
        slot: str | int | None = None,
    ) -> None:
        span = self._span
        span.set_attribute(sc.MOOT_CODE_EXIT_CODE, exit_code)
        span.set_attribute(sc.MOOT_CODE_TIMED_OUT, timed_out)
        span.set_attribute(sc.MOOT_CODE_OOM_KILLED, oom_killed)
        span.set_attribute(sc.MOOT_CODE_DURATION, duration_s)
        if slot is not None:
            span.set_attribute(sc.MOOT_SANDBOX_SLOT, slot)
        _sandbox_duration.record(
            duration_s,
            {
                sc.MOOT_EXECUTOR: str(self._attrs[sc.MOOT_EXECUTOR]),
                sc.MOOT_CODE_EXIT_CODE: exit_code,
            },
        )


def code_run(language: str, executor: str) -> CodeRun:
    """One code block run by an executor (`execute_code {language}`)."""
    if not SWITCH.active:
        return NULL  # type: ignore[no-any-return]
    attrs: dict[str, AttributeValue] = {
        sc.MOOT_CODE_LANGUAGE: language,
        sc.MOOT_EXECUTOR: executor,
    }
    return CodeRun(f"{sc.SPAN_EXECUTE_CODE} {language}", SpanKind.INTERNAL, attrs)


_SELECTING: ContextVar[SpeakerSelection | None] = ContextVar("moot_selecting", default=None)


class SpeakerSelection:
    """A group chat choosing its next speaker: a `select_speaker` span, made only when the
    selection calls a model (an LLM selector), from the moment it began.

    A rule-based choice (round robin, a scripted or custom function) makes no span: it costs
    microseconds, the chosen speaker is the next `invoke_agent {name}` span, and the policy is
    on the workflow span. So a chat pays for a span per turn only where there is something to
    see: the selector's model calls, counted in `moot.speaker.selector_calls`.
    """

    __slots__ = (
        "_calls",
        "_candidates",
        "_chosen",
        "_conversation",
        "_open",
        "_parent",
        "_policy",
        "_span",
        "_start",
        "_token",
    )

    def __init__(self, policy: str, candidates: Sequence[str], conversation_id: str) -> None:
        self._policy = policy
        self._candidates = candidates
        self._conversation = conversation_id
        self._parent = context.get_current()
        self._start = time.time_ns()
        self._span: trace.Span | None = None
        self._calls = 0
        self._chosen: str | None = None
        self._open = True
        self._token: Token[SpeakerSelection | None] | None = None

    def chosen(self, name: str | None) -> None:
        """Record the speaker chosen (None: nobody)."""
        self._chosen = name

    def set(self, key: str, value: AttributeValue | None) -> None:
        if value is not None and self._span is not None:
            self._span.set_attribute(key, value)

    def model_parent(self) -> context.Context | None:
        """The parent of a model call made while choosing: this selection's span, started
        now (backdated to when the selection began) if it is the first call."""
        if not self._open:
            return None
        if self._span is None:
            attrs: dict[str, AttributeValue] = {
                sc.MOOT_SELECTION_POLICY: self._policy,
                sc.MOOT_SELECTION_CANDIDATES: tuple(self._candidates),
                sc.GEN_AI_CONVERSATION_ID: self._conversation,
            }
            self._span = _tracer.start_span(
                sc.SPAN_SELECT_SPEAKER,
                context=self._parent,
                kind=SpanKind.INTERNAL,
                attributes=attrs,
                start_time=self._start,
            )
        self._calls += 1
        return trace.set_span_in_context(self._span, self._parent)

    def __enter__(self) -> Self:
        self._token = _SELECTING.set(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        if self._token is not None:
            _SELECTING.reset(self._token)
        span = self._span
        if span is None:
            return
        span.set_attribute(sc.MOOT_SELECTION_SELECTOR_CALLS, self._calls)
        if self._chosen is not None:
            span.set_attribute(sc.MOOT_SELECTION_CHOSEN, self._chosen)
        if exc is not None and span.is_recording():
            _fail(span, exc)
        span.end()


def _selection_parent() -> context.Context | None:
    """The open speaker selection's span context, for a model call made inside it."""
    selecting = _SELECTING.get()
    return None if selecting is None else selecting.model_parent()


def speaker_selection(
    policy: str, candidates: Sequence[str], conversation_id: str
) -> SpeakerSelection:
    """A group chat choosing its next speaker (see `SpeakerSelection`)."""
    if not SWITCH.active:
        return NULL  # type: ignore[no-any-return]
    return SpeakerSelection(policy, candidates, conversation_id)


# ----------------------------------------------------------------- runtime and pool metrics


def dead_letter(reason: str) -> None:
    """Count one dead letter (rare, so always the API call)."""
    if SWITCH.active:
        _dead_letters.add(1, {"moot.dead_letter.reason": reason})


_watched: dict[str, list[Callable[[], Mapping[str, int]]]] = {}


def watch(kind: str, read: Callable[[], Mapping[str, int]]) -> None:
    """Report `read()`'s numbers as gauges when metrics are collected. `kind` is "runtime"
    (keys `depth`, `waiting_senders`) or "executor" (`pool_size`, `free`, `busy`); hold `read`
    through a weak reference if its owner should be collectable (see `unwatch`)."""
    if not SWITCH.bypass:
        _watched.setdefault(kind, []).append(read)


def unwatch(kind: str, read: Callable[[], Mapping[str, int]]) -> None:
    """Stop reporting `read` (its owner stopped)."""
    readers = _watched.get(kind, [])
    if read in readers:
        readers.remove(read)


def _gauge(kind: str, key: str) -> _Callback:
    def observe(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        total = sum(read().get(key, 0) for read in _watched.get(kind, ()))
        return [metrics.Observation(total)]

    return observe


_meter.create_observable_gauge(
    sc.METRIC_MAILBOX_DEPTH, [_gauge("runtime", "depth")], unit="{message}"
)
_meter.create_observable_gauge(
    sc.METRIC_MAILBOX_WAITING, [_gauge("runtime", "waiting_senders")], unit="{sender}"
)
_meter.create_observable_gauge(sc.METRIC_EXECUTOR_POOL, [_gauge("executor", "pool_size")])
_meter.create_observable_gauge(sc.METRIC_EXECUTOR_FREE, [_gauge("executor", "free")])
_meter.create_observable_gauge(sc.METRIC_EXECUTOR_BUSY, [_gauge("executor", "busy")])


def _turns_taken(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    return [
        metrics.Observation(count, {sc.GEN_AI_AGENT_NAME: name})
        for name, count in list(_turn_counts.items())
    ]


def _chats_running(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    return [metrics.Observation(_running_now[0])]


_meter.create_observable_counter(
    sc.METRIC_TURNS, [_turns_taken], unit="{turn}", description="Agent turns taken"
)
_meter.create_observable_up_down_counter(
    sc.METRIC_CHATS_RUNNING, [_chats_running], unit="{chat}", description="Chats running now"
)
