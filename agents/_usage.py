"""Token and dollar accounting: per model call, summed per chat and per agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ._conversable import ConversableAgent
    from ._model_types import ModelResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelUsage:
    """Calls, tokens and dollars for one model; `+` sums them."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0

    def __add__(self, other: ModelUsage) -> ModelUsage:
        return ModelUsage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cost=self.cost + other.cost,
        )

    def as_dict(self) -> dict[str, Any]:
        """AutoGen's per-model entry: cost and the three token counts."""
        return {
            "cost": self.cost,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


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


class UsageTracker:
    """A running total that model replies are added to; `summary()` freezes it."""

    __slots__ = ("_actual", "_including")

    def __init__(self) -> None:
        self._including: dict[str, ModelUsage] = {}
        self._actual: dict[str, ModelUsage] = {}

    def add(self, response: ModelResponse) -> None:
        """Count one model answer."""
        one = ModelUsage(
            calls=1,
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=response.usage.completion_tokens,
            total_tokens=response.usage.total,
            cost=response.cost,
        )
        model = response.model or "unknown"
        self._including[model] = self._including[model] + one if model in self._including else one
        if not response.cached:
            self._actual[model] = self._actual[model] + one if model in self._actual else one

    def summary(self) -> UsageSummary:
        return UsageSummary(
            including_cached=MappingProxyType(dict(self._including)),
            actual=MappingProxyType(dict(self._actual)),
        )

    def clear(self) -> None:
        self._including.clear()
        self._actual.clear()


def gather_usage_summary(agents: Iterable[ConversableAgent]) -> UsageSummary:
    """The summed model usage of `agents` over all their chats so far."""
    total = UsageSummary()
    for agent in agents:
        total = total + agent.get_total_usage()
    return total
