"""moot.models: the model seam and its clients (OpenAI-compatible HTTP, embedded llama.cpp),
with the wrappers composed around them: retry, rate limits, cache, fallback, usage and pricing;
and the store that fetches and verifies the embedded model's weights."""

from ._cache import DiskCache, InMemoryCache, ResponseCache
from ._config import LLMConfig, ModelConfig
from ._errors import (
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
from ._fallback import FallbackClient, client_from_llm_config
from ._http import ConnectionPool
from ._local import LOCAL_MODEL_NAME, Engine, LocalModelClient
from ._model_store import (
    QWEN_CODER_05B,
    ModelSpec,
    ModelStoreError,
    ModelVerificationError,
    cached_model,
    fetch_model,
    model_path,
)
from ._openai import OpenAIClient
from ._pricing import Price, price_for
from ._rate_limit import RateLimit, RateLimits, RateLimitStatistics
from ._retry import RetryPolicy
from ._types import ModelClient, ModelResponse, TokenCallback, ToolCall, Usage
from ._usage import ModelUsage, UsageSummary, UsageTracker

__all__ = [
    "LOCAL_MODEL_NAME",
    "QWEN_CODER_05B",
    "AuthenticationError",
    "BadRequestError",
    "ConnectionPool",
    "DiskCache",
    "Engine",
    "FallbackClient",
    "InMemoryCache",
    "LLMConfig",
    "LLMConfigError",
    "LocalModelClient",
    "MalformedResponseError",
    "ModelClient",
    "ModelConfig",
    "ModelError",
    "ModelResponse",
    "ModelSpec",
    "ModelStoreError",
    "ModelTimeoutError",
    "ModelUsage",
    "ModelVerificationError",
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
    "UsageSummary",
    "UsageTracker",
    "cached_model",
    "client_from_llm_config",
    "fetch_model",
    "model_path",
    "price_for",
]
