"""Token and dollar accounting: per model call, summed per chat and per agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._types import ModelResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelUsage:
    """Calls, tokens and dollars for one model; `+` sums them.

    `cache_read_tokens` and `cache_write_tokens` are the parts of `prompt_tokens` the provider
    read from or wrote to its prompt cache.
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: ModelUsage) -> ModelUsage:
        return ModelUsage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cost=self.cost + other.cost,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )

    def as_dict(self) -> dict[str, Any]:
        """AutoGen's per-model entry: cost and the three token counts (cache counts, if any)."""
        out: dict[str, Any] = {
            "cost": self.cost,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cache_read_tokens or self.cache_write_tokens:
            out["cache_read_tokens"] = self.cache_read_tokens
            out["cache_write_tokens"] = self.cache_write_tokens
        return out


def _merge(a: Mapping[str, ModelUsage], b: Mapping[str, ModelUsage]) -> dict[str, ModelUsage]:
    out = dict(a)
    for model, usage in b.items():
        out[model] = out[model] + usage if model in out else usage
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageSummary:
    """Model usage of a chat or an agent, per model; cached answers are counted apart.

    `total_cost` and the token totals include answers served from the response cache, as
    AutoGen's "usage_including_cached_inference" does; `actual` leaves them out.
    """

    including_cached: Mapping[str, ModelUsage] = field(default_factory=dict)
    actual: Mapping[str, ModelUsage] = field(default_factory=dict)

    @property
    def total_cost(self) -> float:
        """Dollars over every call, cached ones included."""
        return sum(usage.cost for usage in self.including_cached.values())

    @property
    def prompt_tokens(self) -> int:
        return sum(usage.prompt_tokens for usage in self.including_cached.values())

    @property
    def completion_tokens(self) -> int:
        return sum(usage.completion_tokens for usage in self.including_cached.values())

    @property
    def total_tokens(self) -> int:
        return sum(usage.total_tokens for usage in self.including_cached.values())

    @property
    def cache_read_tokens(self) -> int:
        """Prompt tokens read from the providers' prompt caches (at the cache-read price)."""
        return sum(usage.cache_read_tokens for usage in self.including_cached.values())

    @property
    def cache_write_tokens(self) -> int:
        """Prompt tokens written to the providers' prompt caches (at the cache-write price)."""
        return sum(usage.cache_write_tokens for usage in self.including_cached.values())

    @property
    def calls(self) -> int:
        return sum(usage.calls for usage in self.including_cached.values())

    def __add__(self, other: UsageSummary) -> UsageSummary:
        return UsageSummary(
            including_cached=MappingProxyType(
                _merge(self.including_cached, other.including_cached)
            ),
            actual=MappingProxyType(_merge(self.actual, other.actual)),
        )

    def __getitem__(self, key: str) -> Any:
        """AutoGen-style access, e.g. `cost["usage_including_cached_inference"]["total_cost"]`."""
        return self.as_dict()[key]

    def as_dict(self) -> dict[str, Any]:
        """AutoGen's shape: `{"usage_including_cached_inference": {"total_cost": ..., model: ...},
        "usage_excluding_cached_inference": {...}}`."""

        def part(per_model: Mapping[str, ModelUsage]) -> dict[str, Any]:
            out: dict[str, Any] = {"total_cost": sum(u.cost for u in per_model.values())}
            out.update({model: usage.as_dict() for model, usage in per_model.items()})
            return out

        return {
            "usage_including_cached_inference": part(self.including_cached),
            "usage_excluding_cached_inference": part(self.actual),
        }


class _Tally:
    """One model's running counts inside a `UsageTracker`, cached answers included and
    not (mutable: counting a call allocates nothing)."""

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "calls",
        "completion_tokens",
        "cost",
        "paid_calls",
        "paid_completion_tokens",
        "paid_cost",
        "paid_prompt_tokens",
        "paid_total_tokens",
        "prompt_tokens",
        "total_tokens",
    )

    def __init__(self) -> None:
        self.calls = self.prompt_tokens = self.completion_tokens = self.total_tokens = 0
        self.paid_calls = self.paid_prompt_tokens = 0
        self.paid_completion_tokens = self.paid_total_tokens = 0
        self.cost = self.paid_cost = 0.0
        self.cache_read_tokens = self.cache_write_tokens = 0

    def add(self, response: ModelResponse) -> None:
        usage = response.usage
        self.calls += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.total_tokens += usage.total_tokens
        self.cost += response.cost
        self.cache_read_tokens += usage.cache_read_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        if not response.cached:
            self.paid_calls += 1
            self.paid_prompt_tokens += usage.prompt_tokens
            self.paid_completion_tokens += usage.completion_tokens
            self.paid_total_tokens += usage.total_tokens
            self.paid_cost += response.cost

    def including_cached(self) -> ModelUsage:
        return ModelUsage(
            calls=self.calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens,
            cost=self.cost,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
        )

    def actual(self) -> ModelUsage:
        return ModelUsage(
            calls=self.paid_calls,
            prompt_tokens=self.paid_prompt_tokens,
            completion_tokens=self.paid_completion_tokens,
            total_tokens=self.paid_total_tokens,
            cost=self.paid_cost,
        )


class UsageTracker:
    """A running total that model replies are added to; `summary()` freezes it.

    It counts in place, so adding a call allocates nothing once a model has been seen.
    """

    __slots__ = ("_per_model",)

    def __init__(self) -> None:
        self._per_model: dict[str, _Tally] = {}

    def add(self, response: ModelResponse) -> None:
        """Count one model answer."""
        model = response.model or "unknown"
        tally = self._per_model.get(model)
        if tally is None:
            tally = self._per_model[model] = _Tally()
        tally.add(response)

    def summary(self) -> UsageSummary:
        per_model = self._per_model
        return UsageSummary(
            including_cached=MappingProxyType(
                {model: tally.including_cached() for model, tally in per_model.items()}
            ),
            actual=MappingProxyType(
                {model: tally.actual() for model, tally in per_model.items() if tally.paid_calls}
            ),
        )

    def totals(self) -> tuple[int, float]:
        """Tokens and dollars so far, cached answers included (`summary()`'s `total_tokens`
        and `total_cost`), without building a summary: the journal reads it every turn."""
        tallies = self._per_model.values()
        return sum(t.total_tokens for t in tallies), sum(t.cost for t in tallies)

    def clear(self) -> None:
        self._per_model.clear()
