"""The opt-in cache, cancellation reaching the server, config parsing and loop-bound pools."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from moot.models import (
    CachingClient,
    ConnectionPool,
    DiskCache,
    InMemoryCache,
    LLMConfig,
    LLMConfigError,
    ModelConfig,
    ModelRequest,
    OpenAIClient,
    Price,
    client_from_config,
    client_from_llm_config,
)
from moot.testing import Reply, ScriptedModelServer

if TYPE_CHECKING:
    from pathlib import Path


async def test_cache_hit_avoids_the_second_http_request(hello: list[dict[str, str]]) -> None:
    cache = InMemoryCache()
    tokens: list[str] = []
    async with ScriptedModelServer(["cached answer", "fresh answer"]) as server:
        config = ModelConfig(model="scripted", base_url=server.base_url)
        async with CachingClient(client_from_config(config), cache) as client:
            first = await client.create(ModelRequest(messages=hello))
            again = await client.create(
                ModelRequest(messages=hello, stream=True, on_token=tokens.append)
            )
            other = await client.create(
                ModelRequest(messages=[*hello, {"role": "user", "content": "more"}])
            )

    assert len(server.requests) == 2
    assert (first.content, first.cached) == ("cached answer", False)
    assert (again.content, again.cached, again.usage) == ("cached answer", True, first.usage)
    assert tokens == ["cached answer"]
    assert other.content == "fresh answer"


async def test_cache_seed_writes_under_the_chosen_directory_only(
    hello: list[dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with ScriptedModelServer(["seeded", "unseeded", "unseeded again"]) as server:
        seeded = {"config_list": server.config_list(), "cache_seed": 41, "cache_path_root": "c"}
        for _ in range(2):
            async with client_from_llm_config(seeded) as client:
                assert (await client.create(ModelRequest(messages=hello))).content == "seeded"
        async with client_from_llm_config({"config_list": server.config_list()}) as client:
            await client.create(ModelRequest(messages=hello))
            await client.create(ModelRequest(messages=hello))

    assert len(server.requests) == 3  # the second seeded client read the disk cache
    files = _files_under(tmp_path)
    assert len(files) == 1
    assert files[0].startswith("c/41/")
    assert files[0].endswith(".json")


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_disk_cache_treats_a_damaged_entry_as_a_miss(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    key = "ab" + "0" * 62
    await anyio.Path(tmp_path / "ab").mkdir()
    await anyio.Path(tmp_path / "ab" / f"{key}.json").write_text("{not json")
    assert await cache.get(key) is None


async def test_cancelling_the_caller_closes_the_http_request(
    hello: list[dict[str, str]],
) -> None:
    async with ScriptedModelServer([Reply(hang=True), "after"]) as server:
        config = ModelConfig(model="scripted", base_url=server.base_url)
        async with OpenAIClient(config) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.create, ModelRequest(messages=hello))
                await server.wait_for(lambda s: len(s.requests) == 1)
                tg.cancel_scope.cancel()
            await server.wait_for(lambda s: s.disconnects == 1)
            assert (await client.create(ModelRequest(messages=hello))).content == "after"


def test_llm_config_reads_autogen_dicts() -> None:
    config = LLMConfig.from_autogen(
        {
            "config_list": [
                {"model": "gpt-4o", "api_key": "sk-1", "price": [0.001, 0.002], "tags": ["a"]},
                {"model": "llama3.2", "base_url": "http://localhost:11434/v1/", "api_key": "x"},
            ],
            "temperature": 0.3,
            "timeout": 120,
            "cache_seed": None,
            "top_p": 0.9,
        }
    )
    first, second = config.entries()
    assert first.price == Price(prompt=0.001, completion=0.002)
    assert (first.temperature, first.timeout, first.params) == (0.3, 120, {"top_p": 0.9})
    assert second.base_url == "http://localhost:11434/v1"
    assert config.cache_seed is None
    assert "sk-1" not in repr(first)


def test_autogen_entry_keys_that_are_not_request_parameters_are_translated() -> None:
    entry = ModelConfig.model_validate(
        {
            "model": "gpt-4o",
            "api_type": "azure",
            "azure_endpoint": "https://example.openai.azure.com/",
            "api_version": "2024-10-21",
            "organization": "org-1",
            "api_rate_limit": 2.0,
            "max_retries": 9,
        }
    )
    assert entry.base_url == "https://example.openai.azure.com"
    assert entry.default_headers == {"OpenAI-Organization": "org-1"}
    assert entry.requests_per_minute == 120.0
    assert entry.params == {}


def test_llm_config_accepts_a_single_top_level_entry_and_odd_api_type_spellings() -> None:
    config = LLMConfig.from_autogen({"model": "gpt-4o", "api_key": "k", "temperature": 0})
    assert [e.model for e in config.entries()] == ["gpt-4o"]
    assert config.temperature == 0
    assert ModelConfig.model_validate({"model": "m", "api_type": "open_ai"}).api_type == "openai"


@pytest.mark.parametrize(
    ("llm_config", "fragment"),
    [
        ({"config_list": []}, "config_list"),
        ({"config_list": [{"api_key": "k"}]}, "model"),
        ({"config_list": [{"model": "m", "api_type": "azure"}]}, "api_version"),
        ({"config_list": [{"model": "m", "api_type": "cohere"}]}, "api_type"),
    ],
)
def test_bad_llm_config_raises_a_typed_error_naming_the_problem(
    llm_config: dict[str, object], fragment: str
) -> None:
    with pytest.raises(LLMConfigError, match=fragment):
        LLMConfig.from_autogen(llm_config)


def test_one_client_serves_several_event_loops(hello: list[dict[str, str]]) -> None:
    """Sync callers run each chat in a new loop; the client's pool follows the running loop."""
    with ScriptedModelServer(default="again") as server:
        client = client_from_llm_config({"config_list": server.config_list()})

        async def one_call() -> str | None:
            response = await client.create(ModelRequest(messages=hello))
            await client.aclose()
            return response.content

        assert [anyio.run(one_call) for _ in range(3)] == ["again"] * 3
    assert len(server.requests) == 3


async def test_connection_pool_shards_take_turns_and_reopen_after_aclose() -> None:
    pool = ConnectionPool(shards=2)
    first, second, third = pool.get(), pool.get(), pool.get()
    assert first is not second
    assert third is first
    await pool.aclose()
    assert first.is_closed
    assert second.is_closed
    fresh = pool.get()
    assert fresh is not first
    assert not fresh.is_closed
    await pool.aclose()
    with pytest.raises(ValueError, match="at least one shard"):
        ConnectionPool(shards=0)
