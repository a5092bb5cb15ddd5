"""An agent's `llm_config`, checked when the agent is built rather than at the first model call.

Known keys become client options (through `LLMConfig`); an `http_client` entry is honoured when it
is an `httpx.AsyncClient` (one for the whole config) and refused otherwise; any other key is sent
with each request, so its value must be JSON-serializable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from moot.models import LLMConfig, ModelConfig

from ._errors import AgentConfigError, ConfigValueTypeError

_WHITESPACE = re.compile(r"\s")
_HANDLED = frozenset(
    set(LLMConfig.model_fields)
    | set(ModelConfig.model_fields)
    | {"azure_endpoint", "organization", "api_rate_limit", "max_retries", "stream"}
)


def read_llm_config(
    llm_config: Mapping[str, Any] | LLMConfig, agent_name: str
) -> tuple[LLMConfig, httpx.AsyncClient | None, dict[str, Any]]:
    """Check AutoGen's `llm_config` and read it as an `LLMConfig` plus the caller's HTTP client.

    Raises:
        ConfigValueTypeError: an `http_client` that is not an `httpx.AsyncClient`, several
            different ones, or a value moot would have to send that is not JSON-serializable.
        LLMConfigError: a key is missing or a value is wrong (from `LLMConfig`).
        AgentConfigError: the agent's name has whitespace and a model that refuses such names.
    """
    if isinstance(llm_config, LLMConfig):
        config = llm_config
        http = None
        as_dict = llm_config.model_dump()
    else:
        as_dict = dict(llm_config)
        top, http = _take_http(dict(llm_config), "llm_config")
        entries = top.get("config_list")
        if isinstance(entries, list | tuple):
            cleaned = []
            for number, entry in enumerate(entries):
                if isinstance(entry, Mapping):
                    entry, found = _take_http(dict(entry), f"config_list[{number}]")
                    http = _one_client(http, found)
                    _check_serializable(entry, f"config_list[{number}]")
                cleaned.append(entry)
            top["config_list"] = cleaned
        _check_serializable(top, "llm_config")
        config = LLMConfig.from_autogen(top)
    if _WHITESPACE.search(agent_name) and not all(
        entry.api_type == "azure" for entry in config.config_list
    ):
        raise AgentConfigError(
            f"the agent name {agent_name!r} has whitespace, which the model API refuses in"
            " message names; use letters, digits, '_' or '-'"
        )
    return config, http, as_dict


def _take_http(data: dict[str, Any], where: str) -> tuple[dict[str, Any], httpx.AsyncClient | None]:
    client = data.pop("http_client", None)
    if client is None or isinstance(client, httpx.AsyncClient):
        return data, client
    raise ConfigValueTypeError(
        f"{where}['http_client'] is a {type(client).__name__}; moot's model clients are async,"
        " so give an httpx.AsyncClient (or leave it out and let moot pool connections)"
    )


def _one_client(
    held: httpx.AsyncClient | None, found: httpx.AsyncClient | None
) -> httpx.AsyncClient | None:
    if held is None or found is None or held is found:
        return held or found
    raise ConfigValueTypeError(
        "llm_config has different http_client objects in its entries; moot uses one per agent"
    )


def _check_serializable(data: Mapping[str, Any], where: str) -> None:
    """Keys moot does not know are sent verbatim with each request: they must be JSON."""
    for key, value in data.items():
        if key in _HANDLED or key == "config_list":
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ConfigValueTypeError(
                f"{where}[{key!r}] is a {type(value).__name__}, which cannot be sent to the"
                f" model as JSON ({exc}); remove it or give a JSON value"
            ) from None
