"""Intervals on every score: a seeded percentile bootstrap over the generated images.

The paper's methods differ by fractions of an FID point; a score without its spread cannot
say whether a difference is more than noise. Each resample draws the run's finished images
with replacement (the references stay fixed) and recomputes only the statistic: Inception
features, crops and per-image values are computed once and indexed. The draws depend on the
image count, the number of resamples and the seed alone, so two runs of the same items get
the *same* draws, and the difference of their replicates is a paired bootstrap of the
difference of their scores (:func:`paired`): ``python -m benchmark diff``.

The replicates of each run are kept in ``bootstrap.json`` beside ``results.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

FILE = "bootstrap.json"
METHOD = "percentile bootstrap over the generated images, references fixed"
Resampler = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn: ``resamples`` (0: none), ``seed`` and the interval's ``level``."""

    resamples: int = 200
    seed: int = 0
    level: float = 0.95

    def __post_init__(self):
        if self.resamples < 0:
            raise ValueError(f"--bootstrap must be 0 (no intervals) or more resamples, got {self.resamples}")
        if not 0 < self.level < 1:
            raise ValueError(f"a bootstrap interval's level lies in (0, 1), got {self.level}")

    def draws(self, count: int) -> np.ndarray:
        """``resamples`` x ``count`` image positions, drawn with replacement; the same for every run of ``count``."""
        return np.random.default_rng([self.seed, count]).integers(0, count, size=(self.resamples, count))

    def as_record(self, count: int) -> dict:
        return {"resamples": self.resamples, "seed": self.seed, "level": self.level, "images": count,
                "method": METHOD}


def replicates(resample: Resampler, draws: np.ndarray) -> np.ndarray:
    """The statistic on each resample; NaN where a resample cannot give one (e.g. one distinct image)."""
    values = np.full(len(draws), np.nan)
    for number, positions in enumerate(draws):
        try:
            values[number] = float(resample(positions))
        except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
            pass
    return values


def interval(values: Sequence[float], level: float) -> Optional[tuple[float, float]]:
    """The central ``level`` percentile interval of finite ``values``; None when fewer than two are finite."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite) < 2:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def mean_of(values: Sequence[float]) -> Resampler:
    """The resampler of a score that is the mean of per-image values."""
    array = np.asarray(values, dtype=np.float64)
    return lambda positions: float(array[positions].mean())


def crops_of(counts: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
    """Image positions -> the positions of their crops, for features stored image by image, crop by crop."""
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    return lambda positions: np.concatenate([np.arange(starts[p], starts[p + 1]) for p in positions]).astype(int)


def paired(a: dict, b: dict, level: float) -> dict[str, dict]:
    """Each score both bootstrap records share: A's value minus B's, its interval from the paired
    replicates, and whether the interval excludes 0. ``a`` and ``b`` are ``bootstrap.json`` contents."""
    for key in ("resamples", "seed", "images"):
        if a[key] != b[key]:
            raise ValueError(f"the two runs were bootstrapped differently ({key}: {a[key]} and {b[key]}); "
                             "re-score both with the same settings")
    if a["items"] != b["items"]:
        raise ValueError("the two runs are not on the same items in the same order (sizes and data set items), "
                         "so their images cannot be paired")
    rows = {}
    for name in [n for n in a["replicates"] if n in b["replicates"]]:
        values = a["values"][name], b["values"][name]
        difference = None if None in values else values[0] - values[1]
        # a replicate that could not be computed is stored as null: NaN here, left out of the interval
        bounds = interval(np.asarray(a["replicates"][name], dtype=np.float64)
                          - np.asarray(b["replicates"][name], dtype=np.float64), level)
        rows[name] = {"a": a["values"][name], "b": b["values"][name], "difference": difference,
                      "low": bounds[0] if bounds else None, "high": bounds[1] if bounds else None,
                      "excludes_zero": bool(bounds and (bounds[0] > 0 or bounds[1] < 0))}
    return rows
