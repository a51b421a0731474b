"""The site's plots as small hand-written SVG, inlined in the page.

The markdown report's PNGs come from matplotlib; a page wants vectors that stay sharp at any zoom,
carry a tooltip per point (``<title>``, every recorded string escaped) and need no font or script.
Two kinds: peak memory and seconds per image against the square side, per method (our runs' points
as Figure 7 takes them, the ceiling searches' trials, the paper's figures), and a run's scores
with their intervals (dot and whisker). Only numbers the reporting already holds are drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

from benchmark.reporting import paper
from benchmark.reporting.model_tables import MIB_PER_GIB, _trials, memory_points
from benchmark.reporting.sample_status import OOM, is_oom

WIDTH, HEIGHT = 480, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 24, 28, 40
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
           "#64b5cd")


@dataclass
class Series:
    """A line of points (x, y, tooltip); ``style``: solid (ours), dashed (the paper), dotted (ceiling search), or
    oom: crosses without a line (out of memory, at the memory reached)."""

    label: str
    colour: str
    points: list[tuple[float, float, str]] = field(default_factory=list)
    style: str = "solid"


DASHES = {"solid": "", "dashed": ' stroke-dasharray="6 4"', "dotted": ' stroke-dasharray="2 3"', "oom": ""}


def _marker(series: Series, x: float, y: float, tip: str) -> str:
    title = f"<title>{escape(tip)}</title>"
    if series.style == "oom":
        return (f'<path d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}M{x - 4:.1f},{y + 4:.1f}L{x + 4:.1f},'
                f'{y - 4:.1f}" stroke="{series.colour}" stroke-width="2">{title}</path>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{series.colour}">{title}</circle>'


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    span = (high - low) or abs(high) or 1.0
    step = 10 ** math.floor(math.log10(span / count))
    step *= next(k for k in (1, 2, 5, 10) if span / (step * k) <= count)
    return [step * i for i in range(math.floor(low / step), math.ceil(high / step) + 1)]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 0.01 or value == 0 else f"{value:.1e}"


def line_chart(title: str, x_label: str, y_label: str, series: list[Series]) -> str:
    """One SVG chart, x on a log-2 scale (square sides), y linear from 0; a legend under the title."""
    points = [(x, y) for s in series for x, y, _ in s.points]
    if not points:
        return ""
    xs = [math.log2(x) for x, _ in points]
    x_low, x_high = math.floor(min(xs)), math.ceil(max(xs))
    x_high += x_high == x_low
    y_ticks = _ticks(0.0, max(y for _, y in points) * 1.1 or 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (math.log2(x) - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - y / y_ticks[-1] * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {WIDTH} {HEIGHT + 18 * len(series)}" '
             f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<text x="{LEFT}" y="16" class="plot-title">{escape(title)}</text>']
    for tick in y_ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}"/>'
                     f'<text x="{LEFT - 4}" y="{sy(tick) + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    for power in range(x_low, x_high + 1):
        x = sx(2 ** power)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>'
                     f'<text x="{x:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{2 ** power}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h + 30}" text-anchor="middle">{escape(x_label)}</text>'
                 f'<text transform="translate(12 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
                 f'{escape(y_label)}</text>')
    for s in series:
        ordered = sorted(s.points)
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in ordered)
        if s.style != "oom":
            parts.append(f'<polyline fill="none" stroke="{s.colour}" stroke-width="1.5"{DASHES[s.style]} points="{path}"/>')
        parts += [_marker(s, sx(x), sy(y), tip) for x, y, tip in ordered]
    for index, s in enumerate(series):
        y = HEIGHT + 18 * index
        key = (_marker(s, LEFT + 12, y - 4, s.label) if s.style == "oom" else
               f'<line x1="{LEFT}" x2="{LEFT + 24}" y1="{y - 4}" y2="{y - 4}" stroke="{s.colour}" stroke-width="2"'
               f"{DASHES[s.style]}/>")
        parts.append(f'{key}<text x="{LEFT + 30}" y="{y}">{escape(s.label)}</text>')
    return "".join(parts) + "</svg>"


def memory_and_time(results: list[dict], ceilings: list[dict]) -> list[str]:
    """Peak memory and seconds per image against the square side, per method: our runs' points (as Figure 7
    takes them), the ceiling searches' completed trials (one step per stage) and the paper's memory figures."""
    colours: dict[str, str] = {}

    def colour(method: str) -> str:
        return colours.setdefault(method, COLOURS[len(colours) % len(COLOURS)])

    memory: dict[tuple, Series] = {}
    seconds: dict[tuple, Series] = {}

    def add(chart: dict, key: tuple, style: str, label: str, point: tuple):
        chart.setdefault(key, Series(label, colour(key[0]), style=style)).points.append(point)

    for (method, side), point in sorted(memory_points(results).items()):
        if point["unmade"] is None:
            add(memory, (method, "ours"), "solid", method,
                (side, point["gib"], f"{method} {side}²: {point['gib']:.2f} GiB"))
            add(seconds, (method, "ours"), "solid", method,
                (side, point["seconds"], f"{method} {side}²: {point['seconds']:.2f} s / image"))
        elif point["unmade"] == OOM:
            add(memory, (method, OOM), "oom", f"{method} out of memory", (side, point["gib"], f"{method} {side}²: OOM"))
    for (method, side, budget), trial in sorted(_trials(ceilings).items()):
        if is_oom(trial) and trial["peak_memory_mib"] is not None:
            gib = trial["peak_memory_mib"] / MIB_PER_GIB
            add(memory, (method, OOM), "oom", f"{method} out of memory",
                (side, gib, f"{method} ceiling search ({budget}) {side}²: OOM, reached {gib:.2f} GiB"))
        elif trial["status"] == "ok" and trial["peak_memory_mib"] is not None:
            label = f"{method} ceiling search ({budget}, 1 step per stage)"
            gib = trial["peak_memory_mib"] / MIB_PER_GIB
            add(memory, (method, budget), "dotted", label, (side, gib, f"{label} {side}²: {gib:.2f} GiB"))
            if trial.get("seconds") is not None:
                add(seconds, (method, budget), "dotted", label,
                    (side, trial["seconds"], f"{label} {side}²: {trial['seconds']:.2f} s"))
    shown = {method for method, _ in memory}
    for method, sides in paper.FIGURE7.items():
        for side, gb in sides.items():
            if method in shown and isinstance(gb, float):
                add(memory, (method, "paper"), "dashed", f"{method} (paper, GB)",
                    (side, gb, f"paper: {method} {side}²: {gb} GB"))
    return [chart for chart in (
        line_chart("peak memory against the square side", "square side (px)", "peak memory (GiB)",
                   list(memory.values())),
        line_chart("seconds per image against the square side", "square side (px)", "seconds",
                   list(seconds.values()))) if chart]


def interval_chart(title: str, rows: list[tuple[str, float, float | None, float | None]]) -> str:
    """A dot per run at its score, a whisker over its interval (where it has one); ``rows``: (label, value,
    low, high)."""
    if not rows:
        return ""
    values = [v for _, value, low, high in rows for v in (value, low, high) if v is not None]
    ticks = _ticks(min(values), max(values))
    low_x, high_x = ticks[0], ticks[-1]
    left, width, row_h = 180, WIDTH - 180 - RIGHT, 20
    height = TOP + row_h * len(rows) + 24

    def sx(x: float) -> float:
        return left + (x - low_x) / ((high_x - low_x) or 1.0) * width

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
             f'<text x="4" y="16" class="plot-title">{escape(title)}</text>']
    for tick in ticks:
        parts.append(f'<line class="grid" x1="{sx(tick):.1f}" x2="{sx(tick):.1f}" y1="{TOP}" '
                     f'y2="{height - 20}"/><text x="{sx(tick):.1f}" y="{height - 6}" text-anchor="middle">'
                     f"{_label(tick)}</text>")
    for index, (label, value, low, high) in enumerate(rows):
        y = TOP + row_h * index + row_h / 2
        interval = f" [{low:.4g}, {high:.4g}]" if low is not None and high is not None else " (no interval)"
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{escape(label)}</text>')
        if low is not None and high is not None:
            parts.append(f'<line x1="{sx(low):.1f}" x2="{sx(high):.1f}" y1="{y}" y2="{y}" stroke="#333" '
                         'stroke-width="1.5"/>')
        parts.append(f'<circle cx="{sx(value):.1f}" cy="{y}" r="4" fill="{COLOURS[0]}"><title>'
                     f"{escape(label)}: {value:.4g}{interval}</title></circle>")
    return "".join(parts) + "</svg>"
