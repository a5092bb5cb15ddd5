"""Issue 17's model-client holes, each against the scripted HTTP server's fault modes:
error events inside a 200 stream, unbounded answers, Retry-After past the deadline, callers
waking at one instant, a drip that outlives `timeout`, and a rate limiter that starts with a
whole minute's budget."""

from __future__ import annotations

import anyio
import pytest

from moot.models import (
    BadRequestError,
    InvalidJSONError,
    JSONDepthError,
    ModelConfig,
    ModelRequest,
    ModelTimeoutError,
    OpenAIClient,
    RateLimit,
    RateLimitError,
    RateLimits,
    ResponseTooLargeError,
    RetryPolicy,
    StreamInterruptedError,
    client_from_config,
    client_from_llm_config,
    loads_bounded,
)
from moot.testing import ManualClock, Reply, Responder, ScriptedModelServer

HELLO = ModelRequest(messages=[{"role": "user", "content": "Hello"}])
STREAMED = HELLO.with_options(stream=True)
VLLM_ERROR = {"object": "error", "message": "CUDA out of memory", "type": "InternalServerError"}


def _config(server: ScriptedModelServer, **extra: object) -> ModelConfig:
    return ModelConfig.model_validate({"model": "scripted", "base_url": server.base_url, **extra})


# -- item 7: an error event followed by [DONE] --------------------------------------------------


async def test_an_error_event_then_done_is_a_typed_error_not_an_empty_answer() -> None:
    async with ScriptedModelServer([Reply(stream_error=VLLM_ERROR)]) as server:
        async with OpenAIClient(_config(server)) as client:
            with pytest.raises(StreamInterruptedError, match="CUDA out of memory") as caught:
                await client.create(STREAMED)
    assert caught.value.retryable  # nothing was delivered yet


async def test_a_retryable_error_event_is_retried(retry: RetryPolicy) -> None:
    script: list[Responder] = [Reply(stream_error={**VLLM_ERROR, "code": 503}), "recovered"]
    async with ScriptedModelServer(script) as server:
        async with client_from_config(_config(server), retry=retry) as client:
            response = await client.create(STREAMED)
    assert response.content == "recovered"
    assert len(server.requests) == 2


async def test_an_error_event_naming_a_client_error_is_not_retried(retry: RetryPolicy) -> None:
    bad = {"message": "prompt is too long", "type": "BadRequestError", "code": 400}
    async with ScriptedModelServer([Reply(stream_error=bad), "never"]) as server:
        async with client_from_config(_config(server), retry=retry) as client:
            with pytest.raises(BadRequestError, match="too long"):
                await client.create(STREAMED)
    assert len(server.requests) == 1


# -- item 8: caps on the answer -----------------------------------------------------------------


async def test_an_answer_over_the_byte_cap_is_refused() -> None:
    async with ScriptedModelServer([Reply("word " * 20_000), "short"]) as server:
        config = _config(server, max_response_bytes=64 << 10)
        async with OpenAIClient(config) as client:
            with pytest.raises(ResponseTooLargeError) as caught:
                await client.create(HELLO)
            assert (await client.create(HELLO)).content == "short"  # the client still works
    assert caught.value.limit == 64 << 10
    assert not caught.value.retryable


async def test_an_endless_stream_stops_at_the_default_cap_of_16_mib() -> None:
    async with ScriptedModelServer([Reply(endless=True)]) as server:
        async with OpenAIClient(_config(server)) as client:
            with pytest.raises(ResponseTooLargeError) as caught:
                await client.create(STREAMED)
        await server.wait_for(lambda s: s.disconnects == 1)
    assert caught.value.limit == 16 << 20


async def test_the_cap_is_settable_from_llm_config() -> None:
    async with ScriptedModelServer([Reply(endless=True)]) as server:
        llm_config = {"config_list": server.config_list(), "max_response_bytes": 100_000}
        async with client_from_llm_config(llm_config) as client:
            with pytest.raises(ResponseTooLargeError, match="100000 byte cap"):
                await client.create(STREAMED)


# -- Retry-After --------------------------------------------------------------------------------


async def test_a_retry_after_past_the_deadline_fails_fast(
    retry: RetryPolicy, fake_time: ManualClock
) -> None:
    async with ScriptedModelServer([Reply(status=429, retry_after=3600), "late"]) as server:
        async with client_from_config(_config(server), retry=retry) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.create(HELLO)
    assert caught.value.retry_after == 3600
    assert fake_time.delays == []  # not the 10 s cap and a retry
    assert len(server.requests) == 1


async def test_callers_told_the_same_retry_after_wake_at_different_instants(
    fake_time: ManualClock,
) -> None:
    policy = RetryPolicy(sleep=fake_time.sleep, clock=fake_time.now)
    callers = 20
    script = [Reply(status=429, retry_after=2) for _ in range(callers)]
    async with ScriptedModelServer(script, default="ok") as server:
        async with client_from_config(_config(server), retry=policy) as client:
            async with anyio.create_task_group() as group:
                for _ in range(callers):
                    group.start_soon(client.create, HELLO)
    assert len(fake_time.delays) == callers
    assert all(2.0 <= delay <= 2.5 for delay in fake_time.delays)
    assert len(set(fake_time.delays)) > callers // 2


# -- timeout is the overall deadline ------------------------------------------------------------


@pytest.mark.parametrize("request_", [HELLO, STREAMED], ids=["plain", "streamed"])
async def test_llm_config_timeout_stops_a_one_byte_a_tick_drip(request_: ModelRequest) -> None:
    # 0.02 s a byte: the whole answer takes several seconds, each byte comes well within the
    # 1 s timeout, so only an overall deadline stops it.
    drip = Reply("a drip of an answer that takes its time", drip=0.02)
    async with ScriptedModelServer(default=drip) as server:
        llm_config = {"config_list": server.config_list(), "timeout": 1}
        async with client_from_llm_config(llm_config) as client:
            with anyio.fail_after(30), pytest.raises(ModelTimeoutError, match=r"1\.0 s deadline"):
                await client.create(request_)
    assert len(server.requests) == 1  # no retry is started past the deadline


async def test_a_request_timeout_wins_over_the_config() -> None:
    drip = Reply("slow", drip=0.05)
    async with ScriptedModelServer(default=drip) as server:
        async with client_from_config(_config(server, timeout=600)) as client:
            with anyio.fail_after(30), pytest.raises(ModelTimeoutError):
                await client.create(HELLO.with_options(timeout=0.5))


# -- the shared rate limiter --------------------------------------------------------------------


async def test_the_rate_limiter_lets_a_burst_through_then_paces_the_rest(
    fake_time: ManualClock,
) -> None:
    limits = RateLimits(
        RateLimit(requests_per_minute=600), clock=fake_time.now, sleep=fake_time.sleep
    )
    waits: list[float] = []
    for _ in range(200):
        before = fake_time.now()
        await limits.acquire("http://127.0.0.1:1/v1", "m")
        waits.append(fake_time.now() - before)
    assert waits.count(0.0) == 50  # 5 s of the budget at once, not the whole minute's 600
    assert all(wait == pytest.approx(0.1) for wait in waits[50:])  # then 10 a second


# -- JSON from a model ---------------------------------------------------------------------------


def test_loads_bounded_refuses_deep_nesting_without_recursing() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(JSONDepthError) as caught:
        loads_bounded(deep)
    assert caught.value.max_depth == 64
    assert isinstance(caught.value, ValueError)
    assert loads_bounded('{"a": [1, {"b": "]]]]"}]}', max_depth=3) == {"a": [1, {"b": "]]]]"}]}
    assert loads_bounded('["\\"[[[[", 2]', max_depth=1) == ['"[[[[', 2]
    with pytest.raises(JSONDepthError):
        loads_bounded('{"a": {"b": {}}}', max_depth=2)


def test_loads_bounded_names_text_that_is_not_json() -> None:
    with pytest.raises(InvalidJSONError):
        loads_bounded("{not json")
    with pytest.raises(InvalidJSONError):
        loads_bounded(b"\xff\xfe")
