"""What a bench run is asked to do (`BenchConfig`), checked before anything starts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._errors import BenchConfigError

if TYPE_CHECKING:
    import random

SCENARIOS = ("runtime", "chats", "executor", "model", "mixed", "structured")
"""Every scenario, in the order `moot bench all` runs them."""

ExecutorKind = Literal["auto", "local", "docker"]
Mode = Literal["closed", "open"]


@dataclass(frozen=True, slots=True)
class LatencyDistribution:
    """The model stub's latency: `const:S`, `uniform:LO,HI`, `exp:MEAN` or `lognormal:MEDIAN,SIGMA`
    (seconds). Parsed from the command line's `--latency`."""

    kind: str
    params: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> LatencyDistribution:
        """Raises: BenchConfigError: not one of the four forms, or a negative value."""
        kind, _, rest = text.strip().partition(":")
        arity = {"const": 1, "uniform": 2, "exp": 1, "lognormal": 2}
        if kind not in arity:
            raise BenchConfigError(
                f"unknown latency distribution {text!r}; use const:S, uniform:LO,HI, exp:MEAN"
                " or lognormal:MEDIAN,SIGMA (seconds)"
            )
        try:
            params = tuple(float(part) for part in rest.split(",")) if rest else ()
        except ValueError:
            raise BenchConfigError(
                f"latency {text!r} has a parameter that is not a number"
            ) from None
        if len(params) != arity[kind]:
            raise BenchConfigError(f"latency {kind} takes {arity[kind]} number(s), got {text!r}")
        if any(not math.isfinite(p) or p < 0 for p in params):
            raise BenchConfigError(f"latency {text!r} must use finite values >= 0")
        if kind == "uniform" and params[0] > params[1]:
            raise BenchConfigError(f"latency {text!r}: LO must not exceed HI")
        return cls(kind, params)

    def sample(self, rng: random.Random) -> float:
        if self.kind == "const":
            return self.params[0]
        if self.kind == "uniform":
            return rng.uniform(*self.params)
        if self.kind == "exp":
            return rng.expovariate(1 / self.params[0]) if self.params[0] > 0 else 0.0
        median, sigma = self.params
        return median * math.exp(rng.gauss(0, sigma)) if median > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(f'{p:g}' for p in self.params)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    """One `moot bench` run. `ops=None` lets each scenario pick a size that suits it."""

    scenarios: tuple[str, ...] = ("runtime",)
    concurrency: tuple[int, ...] = (1, 4, 16)
    ops: int | None = None  # operations measured per level (requests, chats, runs, calls)
    warmup: int | None = None  # operations per level run first and not measured
    mode: Mode = "closed"
    rates: tuple[float, ...] = ()  # open loop: arrivals per second, one level each
    seed: int = 1
    agents: int = 3  # chats: agents per group chat
    turns: int = 6  # chats and mixed: turns per chat
    latency: str = "lognormal:0.02,0.5"  # chats and mixed: the model stub's latency
    subscribers: int = 10  # runtime W2: subscribers per topic
    executor: ExecutorKind = "auto"
    timeout: float = 600.0  # seconds one level may take before it is abandoned
    invalid_share: float = 0.3  # structured: share of the scripted server's invalid first answers
    embedded: bool = True  # structured: also measure the embedded model when it is cached
    compare: bool = False  # chats: also run W3 on autogen-agentchat (peer-bench env) when there

    def validate(self) -> None:
        """Raises: BenchConfigError: an unknown scenario or an impossible parameter."""
        if not self.scenarios:
            raise BenchConfigError("name at least one scenario: " + ", ".join(SCENARIOS))
        unknown = [name for name in self.scenarios if name not in SCENARIOS]
        if unknown:
            raise BenchConfigError(
                f"unknown scenario {', '.join(map(repr, unknown))}; choose from "
                + ", ".join(SCENARIOS)
                + " (or all)"
            )
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise BenchConfigError(f"concurrency levels must be >= 1, got {list(self.concurrency)}")
        if max(self.concurrency) > 10_000:
            raise BenchConfigError("concurrency above 10000 is not supported by one process")
        if self.ops is not None and self.ops < 1:
            raise BenchConfigError(f"--ops must be at least 1, got {self.ops}")
        if self.warmup is not None and self.warmup < 0:
            raise BenchConfigError(f"--warmup must not be negative, got {self.warmup}")
        if self.mode not in ("closed", "open"):
            raise BenchConfigError(f"--mode must be closed or open, got {self.mode!r}")
        if self.mode == "open":
            if not self.rates:
                raise BenchConfigError("open-loop mode needs arrival rates: --rate 50,100,200")
            if any(not math.isfinite(r) or r <= 0 for r in self.rates):
                raise BenchConfigError(f"arrival rates must be > 0, got {list(self.rates)}")
        elif self.rates:
            raise BenchConfigError("--rate applies to --mode open only")
        if self.agents < 2:
            raise BenchConfigError(f"a group chat needs at least 2 agents, got {self.agents}")
        if self.turns < 1:
            raise BenchConfigError(f"--turns must be at least 1, got {self.turns}")
        if self.subscribers < 1:
            raise BenchConfigError(f"--subscribers must be at least 1, got {self.subscribers}")
        if self.executor not in ("auto", "local", "docker"):
            raise BenchConfigError(f"--executor must be auto, local or docker: {self.executor!r}")
        if not self.timeout > 0:
            raise BenchConfigError(f"--timeout must be positive, got {self.timeout}")
        if not 0.0 <= self.invalid_share <= 1.0:
            raise BenchConfigError(f"--invalid-share must be in [0, 1], got {self.invalid_share}")
        LatencyDistribution.parse(self.latency)

    @property
    def levels(self) -> tuple[float, ...]:
        """The load levels: concurrency (closed loop) or arrival rates (open loop)."""
        return tuple(self.rates) if self.mode == "open" else tuple(map(float, self.concurrency))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data
