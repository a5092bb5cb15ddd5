"""Latency samples and what the report shows of them: percentiles, a histogram, a CDF."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

CDF_POINTS = 101  # the CDF is kept as the 0th..100th percentiles
HISTOGRAM_BINS = 24


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted `ordered`, linearly interpolated."""
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySummary:
    """One latency metric at one load level, in seconds."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    min: float
    max: float
    cdf: tuple[float, ...]  # the 0th..100th percentiles
    histogram: tuple[tuple[float, float, int], ...]  # (low, high, count) per bin

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean_s": self.mean,
            "p50_s": self.p50,
            "p95_s": self.p95,
            "p99_s": self.p99,
            "min_s": self.min,
            "max_s": self.max,
            "cdf_s": list(self.cdf),
            "histogram": [{"low_s": lo, "high_s": hi, "count": n} for lo, hi, n in self.histogram],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencySummary:
        return cls(
            count=int(data["count"]),
            mean=float(data["mean_s"]),
            p50=float(data["p50_s"]),
            p95=float(data["p95_s"]),
            p99=float(data["p99_s"]),
            min=float(data["min_s"]),
            max=float(data["max_s"]),
            cdf=tuple(float(x) for x in data["cdf_s"]),
            histogram=tuple(
                (float(b["low_s"]), float(b["high_s"]), int(b["count"])) for b in data["histogram"]
            ),
        )


def summarize(samples: Sequence[float], bins: int = HISTOGRAM_BINS) -> LatencySummary:
    """Percentiles, the CDF and a histogram of `samples` (seconds); empty input gives zeros."""
    ordered = sorted(samples)
    if not ordered:
        return LatencySummary(
            count=0, mean=0.0, p50=0.0, p95=0.0, p99=0.0, min=0.0, max=0.0, cdf=(), histogram=()
        )
    low, high = ordered[0], ordered[-1]
    width = (high - low) / bins if high > low else 1.0
    counts = [0] * (bins if high > low else 1)
    for value in ordered:
        counts[min(len(counts) - 1, int((value - low) / width))] += 1
    histogram = tuple(
        (low + i * width, low + (i + 1) * width, count) for i, count in enumerate(counts)
    )
    return LatencySummary(
        count=len(ordered),
        mean=sum(ordered) / len(ordered),
        p50=percentile(ordered, 50),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        min=low,
        max=high,
        cdf=tuple(percentile(ordered, q) for q in range(CDF_POINTS)),
        histogram=histogram,
    )


@dataclass(slots=True)
class Recorder:
    """Collects one load level's samples: latencies per metric and errors by type.

    While `recording` is False (the warm-up) everything is discarded.
    """

    recording: bool = True
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)

    def latency(self, metric: str, seconds: float) -> None:
        if self.recording:
            self.latencies.setdefault(metric, []).append(seconds)

    def error(self, exc: BaseException) -> None:
        """Count `exc` by type name (a handler's own error, not the runtime's wrapper)."""
        if self.recording:
            cause = exc.__cause__ if type(exc).__name__ == "HandlerError" else None
            self.errors[type(cause or exc).__name__] += 1
