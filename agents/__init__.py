"""moot.agents: AutoGen's classic agents on the moot runtime, and the model client they use."""

from ._llm_config import LLMConfig, ModelConfig
from ._model_cache import DiskCache, InMemoryCache, ResponseCache, cache_key
from ._model_client import OpenAIClient
from ._model_errors import (
    AuthenticationError,
    BadRequestError,
    LLMConfigError,
    MalformedResponseError,
    ModelError,
    ModelTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from ._model_fallback import FallbackClient, client_from_llm_config
from ._model_http import ConnectionPool
from ._model_types import ModelClient, ModelResponse, TokenCallback, ToolCall, Usage
from ._pricing import Price, price_for
from ._rate_limit import RateLimit, RateLimits, RateLimitStatistics, default_rate_limits
from ._retry import RetryPolicy

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConnectionPool",
    "DiskCache",
    "FallbackClient",
    "InMemoryCache",
    "LLMConfig",
    "LLMConfigError",
    "MalformedResponseError",
    "ModelClient",
    "ModelConfig",
    "ModelError",
    "ModelResponse",
    "ModelTimeoutError",
    "OpenAIClient",
    "Price",
    "ProviderUnavailableError",
    "RateLimit",
    "RateLimitError",
    "RateLimitStatistics",
    "RateLimits",
    "ResponseCache",
    "RetryPolicy",
    "StreamInterruptedError",
    "TokenCallback",
    "ToolCall",
    "Usage",
    "cache_key",
    "client_from_llm_config",
    "default_rate_limits",
    "price_for",
]
