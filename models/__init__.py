"""moot.models: the model seam (`ModelRequest` → `ModelClient.create` → `ModelResponse`), its
clients (OpenAI-compatible HTTP, Anthropic, Gemini, embedded llama.cpp) and the wrappers
composed around them: cache, fallback, retry, rate limits; `client_from_llm_config` stacks them
in one visible order.
Also usage and pricing, and the store that fetches and verifies the embedded model's weights."""

from ._anthropic import AnthropicClient
from ._cache import CachingClient, DiskCache, InMemoryCache, ResponseCache
from ._config import LLMConfig, ModelConfig
from ._errors import (
    AuthenticationError,
    BadRequestError,
    InvalidJSONError,
    JSONDepthError,
    LLMConfigError,
    MalformedResponseError,
    ModelError,
    ModelTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    ResponseTooLargeError,
    StreamInterruptedError,
    StructuredOutputError,
    error_for_status,
)
from ._fallback import FallbackClient
from ._gemini import GeminiClient
from ._http import ConnectionPool
from ._json import loads_bounded
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
from ._rate_limit import RateLimit, RateLimitedClient, RateLimits, RateLimitStatistics
from ._retry import RetryingClient, RetryPolicy
from ._stack import client_from_config, client_from_llm_config
from ._types import (
    ClientWrapper,
    ModelClient,
    ModelRequest,
    ModelResponse,
    TokenCallback,
    ToolCall,
    Usage,
)
from ._usage import ModelUsage, UsageSummary, UsageTracker

__all__ = [
    "LOCAL_MODEL_NAME",
    "QWEN_CODER_05B",
    "AnthropicClient",
    "AuthenticationError",
    "BadRequestError",
    "CachingClient",
    "ClientWrapper",
    "ConnectionPool",
    "DiskCache",
    "Engine",
    "FallbackClient",
    "GeminiClient",
    "InMemoryCache",
    "InvalidJSONError",
    "JSONDepthError",
    "LLMConfig",
    "LLMConfigError",
    "LocalModelClient",
    "MalformedResponseError",
    "ModelClient",
    "ModelConfig",
    "ModelError",
    "ModelRequest",
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
    "RateLimitedClient",
    "RateLimits",
    "ResponseCache",
    "ResponseTooLargeError",
    "RetryPolicy",
    "RetryingClient",
    "StreamInterruptedError",
    "StructuredOutputError",
    "TokenCallback",
    "ToolCall",
    "Usage",
    "UsageSummary",
    "UsageTracker",
    "cached_model",
    "client_from_config",
    "client_from_llm_config",
    "error_for_status",
    "fetch_model",
    "loads_bounded",
    "model_path",
    "price_for",
]
