"""Dollar prices per 1k tokens, so each response can carry its cost; config entries may override."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """Dollars per 1,000 prompt tokens and per 1,000 completion tokens."""

    prompt: float
    completion: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars for one call with these token counts."""
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1000.0


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
    }
)


def price_for(model: str) -> Price | None:
    """The list price of `model` (exact name, else its longest known prefix), or None if unknown."""
    exact = PRICES.get(model)
    if exact is not None:
        return exact
    best = max((name for name in PRICES if model.startswith(name)), key=len, default=None)
    return PRICES[best] if best is not None else None
