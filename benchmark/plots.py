"""Figures for the reports (PNG, matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
