"""The harness and the demo against the real Docker engine (a failure, never a skip, under CI)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from moot.bench import BenchConfig, run_bench
from moot.cli import ExitCode

if TYPE_CHECKING:
    from pathlib import Path

    from moot.testing import Rule

pytestmark = pytest.mark.docker


async def test_the_executor_scenario_runs_code_in_the_sandbox(docker_image: str) -> None:
    config = BenchConfig(
        scenarios=("executor", "mixed"),
        executor="docker",
        concurrency=(1, 2),
        ops=4,
        warmup=1,
        turns=2,
        latency="const:0",
    )
    results = await run_bench(config)
    runs, mixed = results.series
    assert any("executor: docker" in note for note in runs.notes)
    for series in (runs, mixed):
        for point in series.points:
            assert point.errors == {}
            assert point.units > 0
            assert point.latencies["code_run"].count > 0
            assert point.latencies["code_run"].p50 > 0


def test_the_demo_runs_its_code_in_the_sandbox(
    moot: Any,
    docker_image: str,
    demo_rules: list[Rule],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from moot.testing import ScriptedModelServer

    with ScriptedModelServer(rules=demo_rules) as server:
        monkeypatch.setenv("MOOT_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "scripted")
        ran = moot("demo", "--executor", "docker", "--work-dir", str(tmp_path / "demo"))
    assert ran.code == ExitCode.OK, ran.out + ran.err
    assert "Docker sandbox" in ran.out
    assert "turn 2 · user · exit code 1" in ran.out
    assert "turn 4 · user · exit code 0" in ran.out
    # the file the sandboxed program wrote came back to the host's work dir
    fib = (tmp_path / "demo" / "two-agent" / "fib.txt").read_text().split()
    assert fib == ["0", "1", "1", "2", "3", "5", "8", "13", "21", "34"]
