"""Model configuration at the edge: a `ModelConfig` per endpoint, `LLMConfig` for AutoGen's dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._errors import LLMConfigError
from ._pricing import Price

DEFAULT_MAX_RESPONSE_BYTES = 16 << 20  # room for a 10 MB tool call, far below 200 MB
_SHARED = ("temperature", "max_tokens", "timeout", "max_response_bytes")  # llm_config-wide keys
_API_TYPE_ALIASES = {"open_ai": "openai", "aoai": "azure", "azure_openai": "azure"}


class ModelConfig(BaseModel):
    """One endpoint and model: an OpenAI, Azure or OpenAI-compatible server (Ollama, vLLM, ...),
    or Anthropic's Messages API (`api_type="anthropic"`), or Gemini (`api_type="gemini"`).

    Keys the schema does not name (top_p, seed, ...) are kept in `params` and sent in every request.
    `timeout` is the overall deadline of one call in seconds, retries included;
    `max_response_bytes` caps an answer, whole or streamed (default 16 MiB).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    api_key: str | None = Field(default=None, repr=False)
    base_url: str | None = None
    api_type: Literal["openai", "azure", "anthropic", "gemini"] = "openai"
    api_version: str | None = None
    azure_deployment: str | None = None
    price: Price | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = Field(default=None, gt=0)
    max_response_bytes: int | None = Field(default=None, gt=0)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    stream_usage: bool = True
    default_headers: dict[str, str] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_extra_params(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        # AutoGen spellings that are not request parameters.
        if "azure_endpoint" in data:
            data.setdefault("base_url", data.pop("azure_endpoint"))
        if "organization" in data:
            headers = dict(data.get("default_headers") or {})
            headers["OpenAI-Organization"] = data.pop("organization")
            data["default_headers"] = headers
        if data.get("api_rate_limit"):
            data.setdefault("requests_per_minute", float(data.pop("api_rate_limit")) * 60)
        for ignored in ("api_rate_limit", "max_retries"):  # retries belong to the RetryPolicy
            data.pop(ignored, None)
        known = {key: value for key, value in data.items() if key in cls.model_fields}
        extra = {key: value for key, value in data.items() if key not in cls.model_fields}
        if extra:
            known["params"] = {**extra, **dict(known.get("params") or {})}
        return known

    @field_validator("api_type", mode="before")
    @classmethod
    def _normalize_api_type(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.lower()
            return _API_TYPE_ALIASES.get(lowered, lowered)
        return value

    @field_validator("price", mode="before")
    @classmethod
    def _read_price(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) == 2:
            return Price(prompt=float(value[0]), completion=float(value[1]))
        if isinstance(value, Mapping):
            extra = {
                key: float(value[key]) for key in ("cache_read", "cache_write") if key in value
            }
            return Price(
                prompt=float(value["prompt"]), completion=float(value["completion"]), **extra
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _check_azure(self) -> ModelConfig:
        if self.api_type == "azure" and (not self.base_url or not self.api_version):
            raise LLMConfigError(
                "an azure config needs base_url (the resource endpoint) and api_version",
                setting="api_version",
            )
        return self


class LLMConfig(BaseModel):
    """AutoGen's `llm_config`: a `config_list` tried in order, plus settings shared by entries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config_list: tuple[ModelConfig, ...] = Field(min_length=1)
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = Field(default=None, gt=0)
    max_response_bytes: int | None = Field(default=None, gt=0)
    cache_seed: int | None = None
    cache_path_root: str = ".cache"
    tools: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _read_autogen_dict(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "config_list" not in data and "model" in data:
            # AutoGen also accepts a single entry spelled out at the top level.
            entry_keys = set(ModelConfig.model_fields) - set(_SHARED)
            data["config_list"] = [{key: data.pop(key) for key in list(data) if key in entry_keys}]
        known = {key: value for key, value in data.items() if key in cls.model_fields}
        extra = {key: value for key, value in data.items() if key not in cls.model_fields}
        if extra:
            known["params"] = {**extra, **dict(known.get("params") or {})}
        return known

    @classmethod
    def from_autogen(cls, llm_config: Mapping[str, Any] | LLMConfig) -> LLMConfig:
        """Read AutoGen's `llm_config` dict (or pass an `LLMConfig` through).

        Raises:
            LLMConfigError: a required key is missing or a value is wrong; the message says which.
        """
        if isinstance(llm_config, LLMConfig):
            return llm_config
        try:
            return cls.model_validate(llm_config)
        except ValidationError as exc:
            raise LLMConfigError(f"invalid llm_config: {exc}") from exc

    def entries(self) -> tuple[ModelConfig, ...]:
        """The config list with the shared settings filled in where an entry leaves them unset."""
        resolved = []
        for entry in self.config_list:
            update: dict[str, Any] = {}
            for name in _SHARED:
                if getattr(entry, name) is None and getattr(self, name) is not None:
                    update[name] = getattr(self, name)
            if self.params:
                update["params"] = {**self.params, **entry.params}
            resolved.append(entry.model_copy(update=update) if update else entry)
        return tuple(resolved)
