"""The harness on tiny configurations: every figure present and sane (not timed)."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from moot.bench import (
    BenchConfig,
    BenchConfigError,
    BenchResults,
    LatencyDistribution,
    render_report,
    run_bench,
    summarize,
)
from moot.bench._scenarios import embedded_model_absent
from moot.cli import ExitCode

if TYPE_CHECKING:
    from moot.bench import Point, Series

TINY: dict[str, Any] = {
    "concurrency": (1, 3),
    "ops": 6,
    "warmup": 1,
    "turns": 3,
    "latency": "const:0.001",
}


def check_point(series: Series, point: Point) -> None:
    assert point.units > 0, (series.workload, point)
    assert point.duration_s > 0
    assert point.throughput == pytest.approx(point.units / point.duration_s)
    assert point.cpu_s >= 0
    assert point.cpu_per_unit_ms >= 0
    assert point.peak_rss_bytes > 10_000_000
    assert point.errors == {}
    headline = point.latencies[series.metric]
    assert headline.count > 0
    assert 0 <= headline.min <= headline.p50 <= headline.p95 <= headline.p99 <= headline.max
    assert len(headline.cdf) == 101
    assert list(headline.cdf) == sorted(headline.cdf)
    assert sum(n for _, _, n in headline.histogram) == headline.count


async def test_runtime_scenario_measures_w1_w2_w4() -> None:
    results = await run_bench(BenchConfig(scenarios=("runtime",), subscribers=4, **TINY))
    assert [s.workload for s in results.series] == ["w1", "w2", "w4"]
    for series in results.series:
        assert [p.concurrency for p in series.points] == [1, 3]
        for point in series.points:
            check_point(series, point)
            assert point.ops == 6
    w2 = results.series[1]
    assert all(p.units == 6 * 4 for p in w2.points)  # each publish reaches 4 subscribers
    w4 = results.series[2]
    assert "rss_growth_per_activation_bytes" in w4.points[0].extra


async def test_chats_scenario_counts_turns_and_model_calls() -> None:
    results = await run_bench(BenchConfig(scenarios=("chats",), agents=3, **TINY))
    (series,) = results.series
    assert series.unit == "turns"
    for point in series.points:
        check_point(series, point)
        assert point.units == 6 * 3  # 6 chats of 3 turns
        assert point.latencies["model_call"].count == point.units
        assert point.latencies["model_call"].p50 >= 0.0009  # the loop may wake a hair early


async def test_model_scenario_calls_the_scripted_server() -> None:
    results = await run_bench(BenchConfig(scenarios=("model",), **TINY))
    (series,) = results.series
    for point in series.points:
        check_point(series, point)
        assert point.units == 6


async def test_executor_and_mixed_scenarios_run_code_locally() -> None:
    results = await run_bench(
        BenchConfig(scenarios=("executor", "mixed"), executor="local", **TINY)
    )
    runs, mixed = results.series
    assert any("executor: local" in note for note in runs.notes)
    for point in runs.points:
        check_point(runs, point)
    for point in mixed.points:
        check_point(mixed, point)
        assert point.latencies["code_run"].count >= 6  # at least one run per chat


async def test_open_loop_uses_arrival_rates_and_records_the_seed() -> None:
    config = BenchConfig(
        scenarios=("runtime",), mode="open", rates=(200.0, 400.0), ops=8, warmup=0, seed=7
    )
    results = await run_bench(config)
    for series in results.series:
        assert [p.rate for p in series.points] == [200.0, 400.0]
        for point in series.points:
            check_point(series, point)
    assert results.to_dict()["seed"] == 7


def test_bad_configs_are_refused_before_anything_runs() -> None:
    with pytest.raises(BenchConfigError, match="unknown scenario"):
        BenchConfig(scenarios=("nope",)).validate()
    with pytest.raises(BenchConfigError, match="concurrency"):
        BenchConfig(concurrency=(-1,)).validate()
    with pytest.raises(BenchConfigError, match="LO must not exceed HI"):
        LatencyDistribution.parse("uniform:3,1")


def test_latency_distributions_are_seeded() -> None:
    import random

    lognormal = LatencyDistribution.parse("lognormal:0.05,0.5")
    a = [lognormal.sample(random.Random(3)) for _ in range(3)]
    b = [lognormal.sample(random.Random(3)) for _ in range(3)]
    assert a == b
    assert LatencyDistribution.parse("const:0.2").sample(random.Random(0)) == 0.2
    assert 1 <= LatencyDistribution.parse("uniform:1,2").sample(random.Random(0)) <= 2


def test_summaries_have_linear_percentiles() -> None:
    summary = summarize([float(n) for n in range(101)])
    assert (summary.p50, summary.p95, summary.p99) == (50.0, 95.0, 99.0)
    assert summary.cdf[10] == 10.0
    assert summarize([]).count == 0


async def test_results_round_trip_through_json(tmp_path: Path) -> None:
    results = await run_bench(
        BenchConfig(scenarios=("runtime",), concurrency=(2,), ops=4, warmup=0)
    )
    path = results.write_json(tmp_path / "results.json")
    again = BenchResults.read_json(path)
    assert again.to_dict() == json.loads(path.read_text())
    data = json.loads(path.read_text())
    assert data["schema"] == "moot.bench/1"
    assert set(data) >= {"config", "machine", "versions", "series", "seed", "started"}
    assert data["machine"]["cpus"] >= 1
    assert "moot" in data["versions"]


async def test_the_report_is_self_contained(tmp_path: Path) -> None:
    results = await run_bench(
        BenchConfig(scenarios=("runtime",), concurrency=(1, 2), ops=4, warmup=0)
    )
    html = render_report(results)
    assert html.count("<svg") == 4 * 3  # CDF, histogram, throughput, CPU for W1, W2, W4
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?https?:""", html)
    assert "throughput vs concurrency" in html
    assert "CPU per delivery" in html


def test_moot_bench_writes_results_and_report(moot: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ran = moot(
        "bench",
        "runtime",
        "chats",
        "--quick",
        "--ops",
        "4",
        "--concurrency",
        "1,2",
        "--out",
        str(out),
        "--json",
    )
    assert ran.code == ExitCode.OK, ran.err
    payload = json.loads(ran.out)
    assert Path(payload["report"]).is_file()
    assert Path(payload["results"]).is_file()
    assert [s["workload"] for s in payload["series"]] == ["w1", "w2", "w4", "w3"]
    for series in payload["series"]:
        for point in series["points"]:
            assert point["throughput_per_s"] > 0
            assert math.isfinite(point["latency"][series["metric"]]["p99_s"])
    again = moot("bench", "--report-from", str(out / "results.json"), "--out", str(tmp_path / "re"))
    assert again.code == ExitCode.OK
    assert (tmp_path / "re" / "report.html").read_text().count("<svg") == 16


async def test_the_autogen_comparison_runs_the_peer_script_per_level(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    fake = tmp_path / "w3_agentchat_groupchat.py"
    fake.write_text(
        "import json, sys\n"
        "args = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
        "print('noise')\n"
        "print(json.dumps({'turns_per_s': 10.0 * int(args['--chats']), 'cpu_ms_per_turn': 1.5,"
        " 'peak_rss_mb': 100.0, 'latency_ms': float(args['--latency-ms']),"
        " 'turns': int(args['--turns']), 'versions': {'autogen-agentchat': '0.7.5'}}))\n"
    )
    monkeypatch.setenv("MOOT_PEER_PYTHON", sys.executable)
    monkeypatch.setenv("MOOT_PEER_BENCH", str(tmp_path))
    config = BenchConfig(scenarios=("chats",), compare=True, **TINY)
    results = await run_bench(config)
    assert [row["concurrency"] for row in results.comparisons] == [1, 3]
    assert results.comparisons[1]["turns_per_s"] == 30.0
    assert results.comparisons[0]["latency_ms"] == 1.0  # the median of const:0.001
    assert results.comparisons[0]["turns"] == 3
    assert "autogen-agentchat 0.7.5" in results.comparison_note
    html = render_report(results)
    assert "Comparison with autogen-agentchat" in html
    assert BenchResults.from_dict(results.to_dict()).comparisons == results.comparisons


async def test_without_the_peer_environment_the_comparison_is_a_note(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MOOT_PEER_PYTHON", str(tmp_path / "no-python"))
    config = BenchConfig(scenarios=("chats",), compare=True, **TINY)
    results = await run_bench(config)
    assert results.comparisons == ()
    assert "comparison skipped" in results.comparison_note
    assert "comparison skipped" in render_report(results)


async def test_structured_scenario_reports_valid_rate_and_repairs(tmp_path: Path) -> None:
    config = BenchConfig(
        scenarios=("structured",), invalid_share=0.5, embedded=False, seed=3, **TINY
    )
    results = await run_bench(config)
    (series,) = results.series
    assert (series.workload, series.unit) == ("scripted", "answers")
    assert any("left out (--no-embedded)" in note for note in series.notes)
    seeded = [random.Random(3 * 1_000_003 + task).random() < 0.5 for task in range(6)]
    for point in series.points:
        check_point(series, point)
        assert point.units == 6
        # every invalid first answer is repaired once, so every answer ends schema-valid
        assert point.extra["schema_valid_rate"] == 1.0
        assert 0 < point.extra["repairs_per_answer"] < 1
        first = point.extra["valid_first_try_rate"]
        assert point.extra["repairs_per_answer"] == pytest.approx(1 - first)
    # each level numbers its measured chats 0..5: the repairs are the seeded share exactly
    for point in series.points:
        assert point.extra["repairs_per_answer"] == pytest.approx(sum(seeded) / 6)
    data = results.to_dict()["series"][0]["points"][0]["extra"]
    assert set(data) == {"schema_valid_rate", "valid_first_try_rate", "repairs_per_answer"}
    html = render_report(results)
    assert "schema_valid_rate" in html
    assert "100.0 %" in html


async def test_every_first_answer_invalid_means_one_repair_each() -> None:
    config = BenchConfig(scenarios=("structured",), invalid_share=1.0, embedded=False, **TINY)
    results = await run_bench(config)
    for point in results.series[0].points:
        assert point.extra["schema_valid_rate"] == 1.0  # the scripted repair always succeeds
        assert point.extra["repairs_per_answer"] == 1.0
        assert point.extra["valid_first_try_rate"] == 0.0


def test_invalid_share_is_checked() -> None:
    with pytest.raises(BenchConfigError, match="invalid-share"):
        BenchConfig(scenarios=("structured",), invalid_share=1.5).validate()


@pytest.mark.skipif(
    embedded_model_absent() is not None, reason="the embedded model or its runtime is absent"
)
async def test_structured_scenario_measures_the_embedded_model() -> None:
    config = BenchConfig(
        scenarios=("structured",), concurrency=(1,), ops=2, warmup=0, latency="const:0"
    )
    results = await run_bench(config)
    assert [s.workload for s in results.series] == ["scripted", "embedded"]
    embedded = results.series[1]
    (point,) = embedded.points
    assert point.units == 2
    assert point.extra["schema_valid_rate"] == 1.0  # the grammar holds it to the schema


def test_moot_bench_structured_prints_the_valid_rate(moot: Any, tmp_path: Path) -> None:
    ran = moot(
        "bench",
        "structured",
        "--no-embedded",
        "--invalid-share",
        "1",
        "--concurrency",
        "2",
        "--ops",
        "4",
        "--warmup",
        "0",
        "--latency",
        "const:0",
        "--out",
        str(tmp_path),
    )
    assert ran.code == ExitCode.OK, ran.err
    assert "schema-valid 100%, valid at once 0%, repairs per answer 1.00" in ran.out
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["config"]["invalid_share"] == 1.0
    assert data["series"][0]["points"][0]["extra"]["repairs_per_answer"] == 1.0
