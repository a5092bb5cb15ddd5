"""Failures over real HTTP: each becomes a typed error, retried only when a retry can help."""

from __future__ import annotations

import socket

import anyio
import pytest

from moot.models import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    ModelClient,
    ModelConfig,
    ModelError,
    ModelRequest,
    ModelTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    RetryPolicy,
    StreamInterruptedError,
    client_from_config,
    client_from_llm_config,
)
from moot.runtime import MootError
from moot.testing import ManualClock, Reply, Responder, ScriptedModelServer


def _client(server: ScriptedModelServer, retry: RetryPolicy) -> ModelClient:
    return client_from_config(ModelConfig(model="scripted", base_url=server.base_url), retry=retry)


async def test_429_then_success_waits_as_long_as_retry_after_says(
    hello: list[dict[str, str]], retry: RetryPolicy, fake_time: ManualClock
) -> None:
    script: list[Responder] = [
        Reply(status=429, retry_after=3),
        Reply(status=429, retry_after=30),
        "finally",
    ]
    async with ScriptedModelServer(script) as server, _client(server, retry) as client:
        response = await client.create(ModelRequest(messages=hello))

    assert response.content == "finally"
    assert len(server.requests) == 3
    # Each wait is the hint (the second capped by retry_after_cap) plus its jitter, pinned to the
    # top of its spread (a quarter of the wait) by the fixture.
    assert fake_time.delays == [3.75, 12.5]


async def test_500_is_retried_with_exponential_backoff_then_succeeds(
    hello: list[dict[str, str]], retry: RetryPolicy, fake_time: ManualClock
) -> None:
    script: list[Responder] = [Reply(status=500), Reply(status=503), "recovered"]
    async with ScriptedModelServer(script) as server, _client(server, retry) as client:
        response = await client.create(ModelRequest(messages=hello))

    assert response.content == "recovered"
    assert fake_time.delays == [0.5, 1.0]


async def test_retries_stop_after_max_attempts_with_the_typed_error(
    hello: list[dict[str, str]], retry: RetryPolicy
) -> None:
    async with (
        ScriptedModelServer(default=Reply(status=502, error="upstream down")) as server,
        _client(server, retry) as client,
    ):
        with pytest.raises(ProviderUnavailableError, match="upstream down") as caught:
            await client.create(ModelRequest(messages=hello))
        base_url = server.base_url

    assert len(server.requests) == retry.max_attempts
    error = caught.value
    assert isinstance(error, MootError)
    assert (error.status, error.model, error.base_url) == (502, "scripted", base_url)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, BadRequestError), (401, AuthenticationError), (403, AuthenticationError)],
)
async def test_client_errors_are_never_retried(
    hello: list[dict[str, str]],
    retry: RetryPolicy,
    fake_time: ManualClock,
    status: int,
    error_type: type[ModelError],
) -> None:
    async with (
        ScriptedModelServer(default=Reply(status=status, error="nope")) as server,
        _client(server, retry) as client,
    ):
        with pytest.raises(error_type, match="nope") as caught:
            await client.create(ModelRequest(messages=hello))

    assert len(server.requests) == 1
    assert fake_time.delays == []
    assert caught.value.status == status
    assert not caught.value.retryable


async def test_hang_raises_model_timeout_at_the_attempt_timeout(
    hello: list[dict[str, str]],
) -> None:
    once = RetryPolicy(max_attempts=1)
    async with (
        ScriptedModelServer([Reply(hang=True), Reply(hang=True)]) as server,
        _client(server, once) as client,
    ):
        # Long enough for a loaded machine to connect and send within it; the server never answers.
        with pytest.raises(ModelTimeoutError) as caught:
            await client.create(ModelRequest(messages=hello, timeout=1.0))
        with pytest.raises(TimeoutError):  # a builtin TimeoutError too, streaming or not
            await client.create(ModelRequest(messages=hello, timeout=1.0, stream=True))

    assert "1.0 s" in str(caught.value)
    assert len(server.requests) == 2


async def test_hang_raises_model_timeout_at_the_overall_deadline(
    hello: list[dict[str, str]],
) -> None:
    policy = RetryPolicy(max_attempts=5, deadline=1.0)
    async with (
        ScriptedModelServer(default=Reply(hang=True)) as server,
        _client(server, policy) as client,
    ):
        with anyio.fail_after(10):  # the test's own guard, far beyond the deadline
            with pytest.raises(ModelTimeoutError, match=r"1\.0 s deadline"):
                await client.create(ModelRequest(messages=hello, timeout=30))
            await server.wait_for(lambda s: s.disconnects == 1)

    assert len(server.requests) == 1


async def test_malformed_json_raises_malformed_response_without_retry(
    hello: list[dict[str, str]], retry: RetryPolicy
) -> None:
    async with (
        ScriptedModelServer([Reply(malformed=True)]) as server,
        _client(server, retry) as client,
    ):
        with pytest.raises(MalformedResponseError, match="not a chat completion"):
            await client.create(ModelRequest(messages=hello))

    assert len(server.requests) == 1


async def test_cut_stream_after_tokens_raises_stream_interrupted(
    hello: list[dict[str, str]], retry: RetryPolicy
) -> None:
    tokens: list[str] = []
    text = "one two three four five six seven eight"
    async with (
        ScriptedModelServer([Reply(text, cut_stream=True)]) as server,
        _client(server, retry) as client,
    ):
        with pytest.raises(StreamInterruptedError) as caught:
            await client.create(ModelRequest(messages=hello, stream=True, on_token=tokens.append))

    assert tokens, "some tokens arrived before the cut"
    assert "".join(tokens) != text
    assert not caught.value.retryable  # tokens were delivered: a retry would repeat them
    assert len(server.requests) == 1


async def test_cut_body_without_streaming_is_retried(
    hello: list[dict[str, str]], retry: RetryPolicy
) -> None:
    async with (
        ScriptedModelServer([Reply("half", cut_stream=True), "whole"]) as server,
        _client(server, retry) as client,
    ):
        response = await client.create(ModelRequest(messages=hello))

    assert response.content == "whole"
    assert len(server.requests) == 2


def _closed_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_provider_down_falls_back_to_the_next_config(
    hello: list[dict[str, str]], retry: RetryPolicy, fake_time: ManualClock
) -> None:
    dead = f"http://127.0.0.1:{_closed_loopback_port()}/v1"
    async with ScriptedModelServer(["from the backup"]) as server:
        config_list = [
            {"model": "primary", "base_url": dead, "api_key": "x"},
            *server.config_list(model="backup"),
        ]
        async with client_from_llm_config({"config_list": config_list}, retry=retry) as client:
            response = await client.create(ModelRequest(messages=hello))

    assert response.content == "from the backup"
    assert server.requests[0].body["model"] == "backup"
    assert len(fake_time.delays) == retry.max_attempts - 1  # the dead one was retried first


async def test_fallback_moves_on_after_a_bad_request_and_raises_the_last_error(
    hello: list[dict[str, str]], retry: RetryPolicy
) -> None:
    async with ScriptedModelServer(
        [Reply(status=404, error="no such model"), Reply(status=401, error="bad key")]
    ) as server:
        config_list = server.config_list(model="a") + server.config_list(model="b")
        async with client_from_llm_config({"config_list": config_list}, retry=retry) as client:
            with pytest.raises(AuthenticationError, match="bad key") as caught:
                await client.create(ModelRequest(messages=hello))

    assert [r.body["model"] for r in server.requests] == ["a", "b"]
    assert any("no such model" in note for note in caught.value.__notes__)


async def test_insufficient_quota_is_a_rate_limit_error_that_is_not_retried(
    hello: list[dict[str, str]], retry: RetryPolicy
) -> None:
    quota = Reply(status=429, error="You exceeded your quota", error_code="insufficient_quota")
    async with ScriptedModelServer([quota]) as server, _client(server, retry) as client:
        with pytest.raises(RateLimitError, match="quota") as caught:
            await client.create(ModelRequest(messages=hello))

    assert len(server.requests) == 1
    assert not caught.value.retryable
