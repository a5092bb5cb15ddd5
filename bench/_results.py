"""The figures of a bench run and their JSON form (`results.json`)."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from ._errors import BenchConfigError
from ._stats import LatencySummary

if TYPE_CHECKING:
    from pathlib import Path

SCHEMA = "moot.bench/1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    """One load level of one workload: throughput, latencies, CPU, memory, errors."""

    level: float  # the concurrency (closed loop) or the arrival rate per second (open loop)
    concurrency: int
    rate: float | None
    ops: int
    units: int
    duration_s: float
    cpu_s: float
    peak_rss_bytes: int
    errors: dict[str, int]
    latencies: dict[str, LatencySummary]
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Units per second over the measured part of the level."""
        return self.units / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def cpu_per_unit_ms(self) -> float:
        return 1000 * self.cpu_s / self.units if self.units else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "concurrency": self.concurrency,
            "rate_per_s": self.rate,
            "ops": self.ops,
            "units": self.units,
            "duration_s": self.duration_s,
            "throughput_per_s": self.throughput,
            "cpu_s": self.cpu_s,
            "cpu_per_unit_ms": self.cpu_per_unit_ms,
            "peak_rss_bytes": self.peak_rss_bytes,
            "errors": dict(self.errors),
            "latency": {name: s.to_dict() for name, s in self.latencies.items()},
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Point:
        return cls(
            level=float(data["level"]),
            concurrency=int(data["concurrency"]),
            rate=None if data.get("rate_per_s") is None else float(data["rate_per_s"]),
            ops=int(data["ops"]),
            units=int(data["units"]),
            duration_s=float(data["duration_s"]),
            cpu_s=float(data["cpu_s"]),
            peak_rss_bytes=int(data["peak_rss_bytes"]),
            errors={str(k): int(v) for k, v in data["errors"].items()},
            latencies={name: LatencySummary.from_dict(s) for name, s in data["latency"].items()},
            extra={str(k): float(v) for k, v in data.get("extra", {}).items()},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """One workload measured over the run's load levels."""

    scenario: str
    workload: str
    title: str
    unit: str  # what throughput counts: requests, deliveries, turns, runs, calls
    metric: str  # the headline latency, a key of each point's `latencies`
    mode: str
    points: tuple[Point, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "workload": self.workload,
            "title": self.title,
            "unit": self.unit,
            "metric": self.metric,
            "mode": self.mode,
            "notes": list(self.notes),
            "points": [point.to_dict() for point in self.points],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Series:
        return cls(
            scenario=data["scenario"],
            workload=data["workload"],
            title=data["title"],
            unit=data["unit"],
            metric=data["metric"],
            mode=data["mode"],
            notes=tuple(data.get("notes", ())),
            points=tuple(Point.from_dict(p) for p in data["points"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchResults:
    """A whole run: the config it ran with, where, with which versions, and every series."""

    config: dict[str, Any]
    series: tuple[Series, ...]
    started: str
    duration_s: float
    machine: dict[str, Any]
    versions: dict[str, str]
    comparisons: tuple[dict[str, Any], ...] = ()
    comparison_note: str = ""

    @property
    def errors(self) -> int:
        return sum(sum(p.errors.values()) for s in self.series for p in s.points)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "started": self.started,
            "duration_s": self.duration_s,
            "config": self.config,
            "seed": self.config.get("seed"),
            "machine": self.machine,
            "versions": self.versions,
            "series": [s.to_dict() for s in self.series],
            "comparisons": list(self.comparisons),
            "comparison_note": self.comparison_note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResults:
        if data.get("schema") != SCHEMA:
            raise BenchConfigError(
                f"not a moot bench results file (schema {data.get('schema')!r})", setting="schema"
            )
        return cls(
            config=dict(data["config"]),
            series=tuple(Series.from_dict(s) for s in data["series"]),
            started=str(data["started"]),
            duration_s=float(data["duration_s"]),
            machine=dict(data["machine"]),
            versions={str(k): str(v) for k, v in data["versions"].items()},
            comparisons=tuple(data.get("comparisons", ())),
            comparison_note=str(data.get("comparison_note", "")),
        )

    def write_json(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read_json(cls, path: Path) -> BenchResults:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of moot and `packages`."""
    out: dict[str, str] = {}
    for name in ("moot", *packages):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
