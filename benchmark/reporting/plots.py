"""Figures for the reports (PNG, matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def time_per_tiling(rows: list[tuple[str, float, float]], title: str, path: Path) -> Path:
    """Bar chart of seconds per sample for each tiling, with the spread over samples.

    ``rows`` are (label, mean seconds, standard deviation).
    """
    labels, seconds, spread = zip(*rows)
    figure, axes = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    axes.barh(labels, seconds, xerr=spread, color="#4C72B0")
    axes.invert_yaxis()
    axes.set_xlabel("seconds per sample")
    axes.set_title(title, fontsize=10)
    return _save(figure, path)


def memory_and_time_against_side(ours: dict[str, list[tuple[int, float, float]]],
                                 paper: dict[str, list[tuple[int, float]]], title: str, path: Path,
                                 searches: dict[tuple[str, str], list[tuple[int, float]]],
                                 out_of_memory: dict[str, list[tuple[int, float]]],
                                 budgets: dict[str, float]) -> Path:
    """Figure 7's layout: peak memory (left) and seconds per image (right) against the
    square side, one line per method; the paper's memory figures dashed beside ours.

    ``ours`` maps a method to (side, peak GiB, seconds per image) points, ``paper`` to
    (side, GB) points, ``searches`` a (method, budget) to the (side, peak GiB) of the
    ceiling-search trials that completed, ``out_of_memory`` a method to the (side, GiB
    reached) of samples and trials that ran out of memory (an x each); ``budgets`` maps a
    budget's name to its GiB, drawn as a labelled horizontal line.
    """
    figure, (memory, seconds) = plt.subplots(1, 2, figsize=(11, 4.2))
    methods = sorted(set(ours) | set(paper) | {method for method, _ in searches} | set(out_of_memory))
    colours = dict(zip(methods, plt.rcParams["axes.prop_cycle"].by_key()["color"] * len(methods)))
    for method, points in sorted(ours.items()):
        sides, gib, secs = zip(*sorted(points))
        memory.plot(sides, gib, marker="o", color=colours[method], label=method)
        seconds.plot(sides, secs, marker="o", color=colours[method], label=method)
    for method, points in sorted(paper.items()):
        sides, gb = zip(*sorted(points))
        memory.plot(sides, gb, marker="s", linestyle="--", fillstyle="none", color=colours[method],
                    label=f"{method} (paper)")
    for (method, budget), points in sorted(searches.items()):
        sides, gib = zip(*sorted(points))
        memory.plot(sides, gib, marker="^", linestyle=":", color=colours[method],
                    label=f"{method} ceiling search ({budget})")
    for method, points in sorted(out_of_memory.items()):
        sides, gib = zip(*sorted(points))
        memory.scatter(sides, gib, marker="x", s=60, color=colours[method], label=f"{method} OOM")
    for budget, gib in budgets.items():
        memory.axhline(gib, color="grey", linestyle="-.", linewidth=1)
        memory.annotate(f"budget {budget}", (1, gib), xycoords=("axes fraction", "data"), ha="right",
                        va="bottom", fontsize=8, color="grey")
    if not ours:
        seconds.text(0.5, 0.5, "no finished run (ceiling searches run one step per stage: no seconds)",
                     ha="center", fontsize=8, transform=seconds.transAxes)
    for axes, label in ((memory, "peak memory (GiB; paper: GB)"), (seconds, "seconds per image")):
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.set_xlabel("square side (px)")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)
