"""`report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched)."""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING

from ._svg import bar_chart, fmt, line_chart

if TYPE_CHECKING:
    from pathlib import Path

    from ._results import BenchResults, Point, Series

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #222;
       background: #fff; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { border: 1px solid #e5e5e5; font: 11px system-ui, sans-serif; }
svg .t { font-size: 13px; font-weight: 600; } svg .g { stroke: #eee; } svg .a { stroke: #555; }
.note { color: #555; margin: 2px 0; } .err { color: #b00020; }
"""


_SINGULAR = {"deliveries": "delivery", "activations": "activation"}


def _one(unit: str) -> str:
    return _SINGULAR.get(unit, unit.removesuffix("s"))


def _level_label(series: Series, point: Point) -> str:
    if series.mode == "open":
        return f"{fmt(point.level)}/s"
    return f"C={point.concurrency}"


def _x_label(series: Series) -> str:
    return "arrival rate (per s)" if series.mode == "open" else "concurrency"


def _ms(seconds: float) -> str:
    return fmt(seconds * 1000)


def _points_table(series: Series) -> str:
    metrics = sorted({name for p in series.points for name in p.latencies})
    head = ["level", f"{series.unit}/s", "units", "CPU/unit ms", "peak RSS MB"]
    for metric in metrics:
        head += [f"{metric} p50 ms", "p95", "p99"]
    head.append("errors")
    rows = []
    for point in series.points:
        cells = [
            _level_label(series, point),
            fmt(point.throughput),
            str(point.units),
            f"{point.cpu_per_unit_ms:.3f}",
            f"{point.peak_rss_bytes / 1e6:.0f}",
        ]
        for metric in metrics:
            s = point.latencies.get(metric)
            cells += [_ms(s.p50), _ms(s.p95), _ms(s.p99)] if s else ["", "", ""]
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(point.errors.items())) or "none"
        cells.append(errors)
        rows.append(
            "<tr>"
            + "".join(f"<td>{escape(c)}</td>" for c in cells[:-1])
            + f'<td class="l{" err" if point.errors else ""}">{escape(cells[-1])}</td></tr>'
        )
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _extra_table(series: Series) -> str:
    """The level figures beyond the common ones (rates shown as percentages), if any."""
    names = sorted({name for p in series.points for name in p.extra})
    if not names:
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in ["level", *names])
    rows = []
    for point in series.points:
        cells = [_level_label(series, point)]
        for name in names:
            value = point.extra.get(name)
            if value is None:
                cells.append("")
            elif name.endswith("_rate"):
                cells.append(f"{100 * value:.1f} %")
            else:
                cells.append(fmt(value))
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _charts(series: Series) -> str:
    metric = series.metric
    x_label = _x_label(series)
    cdf_lines = []
    for point in series.points:
        summary = point.latencies.get(metric)
        if summary and summary.cdf:
            cdf_lines.append(
                (
                    _level_label(series, point),
                    [(v * 1000, q / (len(summary.cdf) - 1)) for q, v in enumerate(summary.cdf)],
                )
            )
    charts = []
    if cdf_lines:
        charts.append(
            line_chart(
                f"{metric} latency CDF", "latency (ms)", "fraction", cdf_lines, markers=False
            )
        )
    top = max(series.points, key=lambda p: p.level)
    top_summary = top.latencies.get(metric)
    if top_summary and top_summary.histogram:
        bins = [(lo * 1000, hi * 1000, n) for lo, hi, n in top_summary.histogram]
        charts.append(
            bar_chart(
                f"{metric} latency histogram ({_level_label(series, top)})",
                "latency (ms)",
                "count",
                bins,
            )
        )
    levels = [p.level for p in series.points]
    charts.append(
        line_chart(
            f"throughput vs {x_label}",
            x_label,
            f"{series.unit}/s",
            [
                (
                    series.unit,
                    [(x, p.throughput) for x, p in zip(levels, series.points, strict=True)],
                )
            ],
        )
    )
    charts.append(
        line_chart(
            f"CPU per {_one(series.unit)} vs {x_label}",
            x_label,
            "CPU ms",
            [("cpu", [(x, p.cpu_per_unit_ms) for x, p in zip(levels, series.points, strict=True)])],
        )
    )
    return '<div class="charts">' + "".join(charts) + "</div>"


def _comparison(results: BenchResults) -> str:
    if not results.comparison_note:
        return ""
    note = f'<p class="note">{escape(results.comparison_note)}</p>'
    chats = next((s for s in results.series if s.scenario == "chats"), None)
    if not results.comparisons or chats is None:
        return f"<h2>Comparison</h2>{note}"
    ours = {p.concurrency: p for p in chats.points}
    rows = []
    theirs_line, ours_line = [], []
    for row in results.comparisons:
        c = int(row["concurrency"])
        mine = ours.get(c)
        if "error" in row or mine is None:
            rows.append(
                f'<tr><td>C={c}</td><td class="l err" colspan="6">'
                f"{escape(str(row.get('error', 'no moot figure')))}</td></tr>"
            )
            continue
        theirs_line.append((float(c), float(row["turns_per_s"])))
        ours_line.append((float(c), mine.throughput))
        cells = [
            f"C={c}",
            fmt(mine.throughput),
            fmt(float(row["turns_per_s"])),
            f"{mine.cpu_per_unit_ms:.3f}",
            f"{float(row['cpu_ms_per_turn']):.3f}",
            f"{mine.peak_rss_bytes / 1e6:.0f}",
            f"{float(row['peak_rss_mb']) * 1.048576:.0f}",
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(x)}</td>" for x in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "level",
            "moot turns/s",
            "autogen turns/s",
            "moot CPU/turn ms",
            "autogen CPU/turn ms",
            "moot peak RSS MB",
            "autogen peak RSS MB",
        )
    )
    chart = (
        line_chart(
            "W3 turns/s: moot vs autogen-agentchat",
            "concurrency",
            "turns/s",
            [("moot", ours_line), ("autogen", theirs_line)],
        )
        if ours_line
        else ""
    )
    return (
        f"<h2>Comparison with autogen-agentchat</h2>{note}<table><tr>{head}</tr>"
        f"{''.join(rows)}</table>{chart}"
    )


def _kv_table(title: str, data: dict[str, object]) -> str:
    rows = "".join(
        f'<tr><td class="l">{escape(str(k))}</td><td class="l">'
        f"{escape(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
        for k, v in data.items()
    )
    return f"<h2>{escape(title)}</h2><table>{rows}</table>"


def render_report(results: BenchResults) -> str:
    """The HTML of the report: per series a table and four charts, then config and machine."""
    sections = []
    for series in results.series:
        notes = "".join(f'<p class="note">{escape(n)}</p>' for n in series.notes)
        sections.append(
            f"<h2>{escape(series.title)}</h2>{notes}"
            f'<p class="note">scenario <b>{escape(series.scenario)}</b>, {escape(series.mode)}'
            f" loop; warm-up excluded</p>{_points_table(series)}{_extra_table(series)}"
            f"{_charts(series)}"
        )
    errors = results.errors
    verdict = (
        f'<p class="err">{errors} operation(s) failed; see the errors column.</p>'
        if errors
        else '<p class="note">No errors.</p>'
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>moot bench report</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>moot bench report</h1><p class='note'>{escape(results.started)} ·"
        f" {results.duration_s:.1f} s · seed {escape(str(results.config.get('seed')))} ·"
        f" {escape(str(results.machine.get('cpus')))} CPUs</p>{verdict}"
        + "".join(sections)
        + _comparison(results)
        + _kv_table("Configuration", results.config)
        + _kv_table("Machine", results.machine)
        + _kv_table("Versions", dict(results.versions))
        + "</body></html>\n"
    )


def write_report(results: BenchResults, path: Path) -> Path:
    """Write `render_report(results)` to `path`."""
    path.write_text(render_report(results), encoding="utf-8")
    return path
