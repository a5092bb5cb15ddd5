"""`moot bench SCENARIO...`: run the load-test harness, write results.json and report.html."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from rich.markup import escape
from rich.table import Table

from ._errors import CliError, ExitCode, MissingError, UsageError

if TYPE_CHECKING:
    from moot.bench import BenchResults

    from ._output import Output

DESCRIPTION = """\
Measure how far moot goes on this machine. Scenarios:
  runtime   W1 request/reply, W2 fan-out, W4 activation on the actor runtime
  chats     W3: concurrent group chats of --agents agents x --turns turns, model stub of --latency
  executor  code runs per second and their latency (Docker sandbox, else the local executor)
  model     model-client calls against the scripted OpenAI-compatible server on loopback
  mixed     chats whose coder writes code that a runner agent executes
  structured  answers with response_format= a pydantic model: scripted server (--invalid-share
            of first answers invalid) and, when cached, the embedded model under the schema
            grammar; reports the schema-valid rate and repairs per answer
  all       every scenario above

Closed loop (default): each --concurrency level runs that many operations at once. Open loop
(--mode open --rate R1,R2): seeded Poisson arrivals; latency counts from the scheduled arrival.
Warm-up operations run first at every level and are not measured. Writes OUT/results.json and
OUT/report.html (self-contained, opens offline).
"""


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def add_bench(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="load-test moot and write results.json and report.html",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help="what to measure (see above)"
    )
    bench.add_argument(
        "--concurrency",
        type=_ints,
        default=None,
        metavar="C1,C2",
        help="load levels (default 1,4,16; --quick 1,4)",
    )
    bench.add_argument(
        "--mode",
        choices=("closed", "open"),
        default="closed",
        help="closed loop (default) or open loop",
    )
    bench.add_argument(
        "--rate",
        type=_floats,
        default=(),
        metavar="R1,R2",
        help="open loop: arrivals per second, one level each",
    )
    bench.add_argument(
        "--ops",
        type=int,
        default=None,
        help="operations measured per level (default: per scenario)",
    )
    bench.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="operations per level before measuring (default: per scenario)",
    )
    bench.add_argument(
        "--agents", type=int, default=3, help="chats: agents per group chat (default 3)"
    )
    bench.add_argument(
        "--turns", type=int, default=6, help="chats, mixed: turns per chat (default 6)"
    )
    bench.add_argument(
        "--latency",
        default="lognormal:0.02,0.5",
        help="model stub latency in seconds: const:S, uniform:LO,HI, exp:MEAN,"
        " lognormal:MEDIAN,SIGMA",
    )
    bench.add_argument(
        "--subscribers", type=int, default=10, help="runtime W2: subscribers per topic (default 10)"
    )
    bench.add_argument(
        "--executor",
        choices=("auto", "local", "docker"),
        default="auto",
        help="executor, mixed: where code runs (auto: Docker when its engine and image are there)",
    )
    bench.add_argument(
        "--invalid-share",
        type=float,
        default=0.3,
        metavar="P",
        help="structured: share of the scripted server's first answers that are invalid"
        " (default 0.3)",
    )
    bench.add_argument(
        "--no-embedded",
        dest="embedded",
        action="store_false",
        help="structured: leave the embedded model out even when it is cached",
    )
    bench.add_argument("--seed", type=int, default=1, help="seed of every random choice (recorded)")
    bench.add_argument(
        "--timeout", type=float, default=600.0, help="seconds one level may take (default 600)"
    )
    bench.add_argument(
        "--compare",
        action="store_true",
        help="chats: also run W3 on autogen-agentchat from shared/peer-bench when it is set up",
    )
    bench.add_argument("--quick", action="store_true", help="a small, fast run (smoke test)")
    bench.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="directory for results.json and report.html (default ./bench-results)",
    )
    bench.add_argument(
        "--report-from",
        type=Path,
        default=None,
        metavar="RESULTS_JSON",
        help="only re-render report.html from an existing results.json",
    )
    bench.set_defaults(run=_run_bench)


def config_from_args(args: argparse.Namespace) -> Any:
    """The `BenchConfig` the arguments ask for.

    Raises:
        UsageError: unknown scenario or impossible parameters.
    """
    from moot.bench import SCENARIOS, BenchConfig, BenchConfigError

    names = list(args.scenarios) or ["runtime"]
    if "all" in names:
        names = [*SCENARIOS]
    quick = args.quick
    concurrency = args.concurrency or ((1, 4) if quick else (1, 4, 16))
    ops = args.ops if args.ops is not None else (20 if quick else None)
    turns = args.turns if not quick or args.turns != 6 else 4
    try:
        config = BenchConfig(
            scenarios=tuple(names),
            concurrency=tuple(concurrency),
            ops=ops,
            warmup=args.warmup if args.warmup is not None else (2 if quick else None),
            mode=args.mode,
            rates=tuple(args.rate),
            seed=args.seed,
            agents=args.agents,
            turns=turns,
            latency=args.latency,
            subscribers=args.subscribers,
            executor=args.executor,
            timeout=args.timeout,
            invalid_share=args.invalid_share,
            embedded=args.embedded,
            compare=args.compare,
        )
        config.validate()
    except BenchConfigError as exc:
        raise UsageError(str(exc), hint="see `moot bench --help`") from exc
    return config


def _summary_table(results: BenchResults) -> Table:
    table = Table(title="moot bench")
    for column in (
        "workload",
        "level",
        "throughput",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU/unit ms",
        "peak RSS MB",
        "errors",
    ):
        table.add_column(column, justify="left" if column in ("workload", "errors") else "right")
    for series in results.series:
        for point in series.points:
            summary = point.latencies.get(series.metric)
            level = f"{point.level:g}/s" if series.mode == "open" else f"C={point.concurrency}"
            table.add_row(
                f"{series.scenario}/{series.workload}",
                level,
                f"{point.throughput:,.1f} {series.unit}/s",
                f"{summary.p50 * 1000:.2f}" if summary else "-",
                f"{summary.p95 * 1000:.2f}" if summary else "-",
                f"{summary.p99 * 1000:.2f}" if summary else "-",
                f"{point.cpu_per_unit_ms:.3f}",
                f"{point.peak_rss_bytes / 1e6:.0f}",
                ", ".join(f"{k}: {v}" for k, v in point.errors.items()) or "-",
            )
    return table


def _run_bench(args: argparse.Namespace, out: Output) -> ExitCode:
    from moot.bench import BenchEnvironmentError, BenchResults, run_bench, write_report

    if args.report_from is not None:
        try:
            results = BenchResults.read_json(args.report_from)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot read {args.report_from}: {exc}") from exc
        args.out.mkdir(parents=True, exist_ok=True)
        report = write_report(results, args.out / "report.html")
        out.result({"report": str(report)})
        out.say(f"report: {report}")
        return ExitCode.OK

    config = config_from_args(args)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output directory {args.out}: {exc}") from exc
    with out.err.status("starting", spinner="dots") as status:

        def progress(line: str) -> None:
            status.update(escape(line))
            out.err.print(f"[dim]\\[moot bench][/] {escape(line)}")

        try:
            results = anyio.run(lambda: run_bench(config, progress=progress))
        except BenchEnvironmentError as exc:
            raise MissingError(str(exc), hint="run `moot doctor`, or use --executor local") from exc
        except TimeoutError as exc:
            raise CliError(
                f"a load level took longer than --timeout {config.timeout:g} s",
                code=ExitCode.FAILED,
                hint="use fewer --ops or a larger --timeout",
            ) from exc
    json_path = results.write_json(args.out / "results.json")
    html_path = write_report(results, args.out / "report.html")
    out.result({"results": str(json_path), "report": str(html_path), **results.to_dict()})
    out.table(_summary_table(results))
    for series in results.series:
        for point in series.points:
            if "schema_valid_rate" in point.extra:
                out.say(
                    f"{series.scenario}/{series.workload} C={point.concurrency}: schema-valid"
                    f" {point.extra['schema_valid_rate']:.0%}, valid at once"
                    f" {point.extra['valid_first_try_rate']:.0%}, repairs per answer"
                    f" {point.extra['repairs_per_answer']:.2f}"
                )
    out.say(f"results: {json_path}\nreport:  {html_path}")
    if results.errors:
        out.say(f"[red]{results.errors} operation(s) failed; see the errors column.[/]")
        return ExitCode.FAILED
    return ExitCode.OK
