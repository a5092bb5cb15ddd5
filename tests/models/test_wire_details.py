"""Smaller wire details: Retry-After spellings, keys from the environment, stream errors."""

from __future__ import annotations

import email.utils
import time

import pytest

from moot.models import (
    BadRequestError,
    MalformedResponseError,
    ModelConfig,
    ModelRequest,
    OpenAIClient,
    RateLimitError,
    RetryPolicy,
    client_from_config,
)
from moot.testing import ManualClock, Reply, Responder, ScriptedModelServer


async def test_retry_after_ms_and_http_dates_are_understood(
    hello: list[dict[str, str]], retry: RetryPolicy, fake_time: ManualClock
) -> None:
    soon = email.utils.formatdate(time.time() + 40, usegmt=True)
    script: list[Responder] = [
        Reply(status=429, headers={"retry-after-ms": "1500"}),
        Reply(status=503, headers={"retry-after": soon}),
        "done",
    ]
    async with ScriptedModelServer(script) as server:
        config = ModelConfig(model="scripted", base_url=server.base_url)
        async with client_from_config(config, retry=retry) as client:
            assert (await client.create(ModelRequest(messages=hello))).content == "done"

    # 1.5 s, and the date (40 s away) capped by retry_after_cap; each plus its pinned jitter.
    assert fake_time.delays == [1.875, retry.retry_after_cap * 1.25]


async def test_openai_key_comes_from_the_environment_only_for_openai_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    async with ScriptedModelServer(["local"]) as server:
        config = ModelConfig(model="llama3.2", base_url=server.base_url)
        async with OpenAIClient(config) as client:
            await client.create(ModelRequest(messages=[{"role": "user", "content": "hi"}]))

    assert "authorization" not in server.requests[0].headers  # never leak the key elsewhere


async def test_errors_while_streaming_are_typed(
    hello: list[dict[str, str]], retry: RetryPolicy
) -> None:
    def broken_chunk(_: object) -> Reply:
        return Reply(status=400, error="stream=true is not supported here")

    async with ScriptedModelServer([broken_chunk, Reply(status=429, error="later")]) as server:
        config = ModelConfig(model="scripted", base_url=server.base_url)
        once = RetryPolicy(max_attempts=1)
        async with client_from_config(config, retry=once) as client:
            with pytest.raises(BadRequestError, match="not supported"):
                await client.create(ModelRequest(messages=hello, stream=True))
            with pytest.raises(RateLimitError, match="later"):
                await client.create(ModelRequest(messages=hello, stream=True))


async def test_broken_json_to_a_stream_request_is_a_malformed_response() -> None:
    async with ScriptedModelServer([Reply(malformed=True)]) as server:
        config = ModelConfig(model="scripted", base_url=server.base_url)
        async with client_from_config(config, retry=RetryPolicy(max_attempts=1)) as client:
            with pytest.raises(MalformedResponseError, match="not a chat completion"):
                await client.create(
                    ModelRequest(messages=[{"role": "user", "content": "x"}], stream=True)
                )
