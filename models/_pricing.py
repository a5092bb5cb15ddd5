"""Dollar prices per 1k tokens, so each response can carry its cost; config entries may override."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """Dollars per 1,000 prompt tokens and per 1,000 completion tokens.

    `cache_read` and `cache_write` price the prompt tokens read from or written to a provider's
    prompt cache; unset, they cost what any prompt token costs.
    """

    prompt: float
    completion: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """Dollars for one call; the cache counts are parts of `prompt_tokens`."""
        plain = max(0, prompt_tokens - cache_read_tokens - cache_write_tokens)
        read = self.prompt if self.cache_read is None else self.cache_read
        write = self.prompt if self.cache_write is None else self.cache_write
        return (
            plain * self.prompt
            + cache_read_tokens * read
            + cache_write_tokens * write
            + completion_tokens * self.completion
        ) / 1000.0


# Public list prices (USD per 1k tokens). Dated model names match by their longest known prefix.
PRICES: MappingProxyType[str, Price] = MappingProxyType(
    {
        "gpt-4o-mini": Price(prompt=0.00015, completion=0.0006),
        "gpt-4o": Price(prompt=0.0025, completion=0.01),
        "gpt-4.1-nano": Price(prompt=0.0001, completion=0.0004),
        "gpt-4.1-mini": Price(prompt=0.0004, completion=0.0016),
        "gpt-4.1": Price(prompt=0.002, completion=0.008),
        "gpt-4-turbo": Price(prompt=0.01, completion=0.03),
        "gpt-4-32k": Price(prompt=0.06, completion=0.12),
        "gpt-4": Price(prompt=0.03, completion=0.06),
        "gpt-35-turbo": Price(prompt=0.0005, completion=0.0015),
        "gpt-3.5-turbo": Price(prompt=0.0005, completion=0.0015),
        "o1-mini": Price(prompt=0.0011, completion=0.0044),
        "o1": Price(prompt=0.015, completion=0.06),
        "o3-mini": Price(prompt=0.0011, completion=0.0044),
        "o4-mini": Price(prompt=0.0011, completion=0.0044),
        # Anthropic: a cache write costs 1.25x a prompt token, a cache read 0.1x.
        "claude-opus-4": Price(
            prompt=0.015, completion=0.075, cache_read=0.0015, cache_write=0.01875
        ),
        "claude-sonnet-4": Price(
            prompt=0.003, completion=0.015, cache_read=0.0003, cache_write=0.00375
        ),
        "claude-3-7-sonnet": Price(
            prompt=0.003, completion=0.015, cache_read=0.0003, cache_write=0.00375
        ),
        "claude-3-5-sonnet": Price(
            prompt=0.003, completion=0.015, cache_read=0.0003, cache_write=0.00375
        ),
        "claude-3-5-haiku": Price(
            prompt=0.0008, completion=0.004, cache_read=0.00008, cache_write=0.001
        ),
        "claude-haiku-4-5": Price(
            prompt=0.001, completion=0.005, cache_read=0.0001, cache_write=0.00125
        ),
    }
)


def price_for(model: str) -> Price | None:
    """The list price of `model` (exact name, else its longest known prefix), or None if unknown."""
    exact = PRICES.get(model)
    if exact is not None:
        return exact
    best = max((name for name in PRICES if model.startswith(name)), key=len, default=None)
    return PRICES[best] if best is not None else None
