"""moot.bench: the load-test harness behind `moot bench`, usable as a library.

results = await run_bench(BenchConfig(scenarios=("chats",), concurrency=(1, 8)))
results.write_json(Path("results.json")); write_report(results, Path("report.html"))
"""

from ._config import SCENARIOS, BenchConfig, LatencyDistribution
from ._errors import BenchConfigError, BenchEnvironmentError, BenchError, BenchRunError
from ._report import render_report, write_report
from ._results import BenchResults, Point, Series, machine, versions
from ._run import run_bench
from ._stats import LatencySummary, summarize

__all__ = [
    "SCENARIOS",
    "BenchConfig",
    "BenchConfigError",
    "BenchEnvironmentError",
    "BenchError",
    "BenchResults",
    "BenchRunError",
    "LatencyDistribution",
    "LatencySummary",
    "Point",
    "Series",
    "machine",
    "render_report",
    "run_bench",
    "summarize",
    "versions",
    "write_report",
]
