"""Small inline-SVG charts (line and bar) for the offline report: no JavaScript, nothing to load."""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
WIDTH, HEIGHT = 460, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 44


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return ticks


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


class _Frame:
    def __init__(self, xs: Sequence[float], ys: Sequence[float], *, y_from_zero: bool) -> None:
        x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
        y_low, y_high = (min(ys), max(ys)) if ys else (0.0, 1.0)
        if y_from_zero:
            y_low = min(0.0, y_low)
        self.xticks = nice_ticks(x_low, x_high)
        self.yticks = nice_ticks(y_low, y_high)
        self.x0, self.x1 = self.xticks[0], self.xticks[-1]
        self.y0, self.y1 = self.yticks[0], self.yticks[-1]

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return LEFT + (value - self.x0) / span * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return HEIGHT - BOTTOM - (value - self.y0) / span * (HEIGHT - TOP - BOTTOM)

    def axes(self, title: str, xlabel: str, ylabel: str) -> list[str]:
        parts = [
            f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
            f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" class="t">{escape(title)}</text>',
        ]
        for tick in self.yticks:
            y = self.y(tick)
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="g"/>'
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(tick)}</text>'
            )
        for tick in self.xticks:
            x = self.x(tick)
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM + 4}"'
                f' class="a"/><text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                f"{fmt(tick)}</text>"
            )
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}"'
            f' class="a"/><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"'
            ' class="a"/>'
            f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{escape(xlabel)}</text>"
            f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)"'
            f' text-anchor="middle">{escape(ylabel)}</text>'
        )
        return parts


def _svg(parts: list[str], label: str) -> str:
    body = "".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}"'
        f' height="{HEIGHT}" role="img" aria-label="{escape(label)}" class="chart">{body}</svg>'
    )


def line_chart(
    title: str,
    xlabel: str,
    ylabel: str,
    lines: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    markers: bool = True,
) -> str:
    """One polyline per (label, points); a legend when there is more than one."""
    xs = [x for _, points in lines for x, _ in points]
    ys = [y for _, points in lines for _, y in points]
    frame = _Frame(xs, ys, y_from_zero=True)
    parts = frame.axes(title, xlabel, ylabel)
    for index, (label, points) in enumerate(lines):
        color = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"'
            f' class="series"/>'
        )
        if markers:
            parts.extend(
                f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="3" fill="{color}"/>'
                for x, y in points
            )
        if len(lines) > 1:
            ly = TOP + 6 + 14 * index
            parts.append(
                f'<rect x="{WIDTH - RIGHT - 110}" y="{ly}" width="10" height="10" fill="{color}"/>'
                f'<text x="{WIDTH - RIGHT - 96}" y="{ly + 9}">{escape(label)}</text>'
            )
    return _svg(parts, title)


def bar_chart(
    title: str, xlabel: str, ylabel: str, bins: Sequence[tuple[float, float, int]]
) -> str:
    """A histogram: one bar per (low, high, count)."""
    xs = [b[0] for b in bins] + [b[1] for b in bins]
    ys = [float(b[2]) for b in bins]
    frame = _Frame(xs, ys, y_from_zero=True)
    parts = frame.axes(title, xlabel, ylabel)
    for low, high, count in bins:
        x0, x1 = frame.x(low), frame.x(high)
        y = frame.y(count)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(1.0, x1 - x0 - 1):.1f}"'
            f' height="{frame.y(0) - y:.1f}" fill="{PALETTE[0]}" class="series"/>'
        )
    return _svg(parts, title)
