"""FID∞: FID without its sample-size bias (Chong & Forsyth, "Effectively Unbiased FID", CVPR 2020).

FID over N images is biased upwards by roughly k / N, with k depending on the generator, so
FIDs at different N (or a run's FID against a paper's at another N) do not compare. FID∞
fits FID_N = FID∞ + k / N by least squares to FIDs of seeded random subsets at several N
(evenly spaced in 1 / N, from a fifth of the images up to all of them) and reports the
intercept; the points of the fit are recorded with it.
"""

from __future__ import annotations

import numpy as np

from benchmark.metrics.fid import frechet_resampler

MIN_IMAGES = 20
POINTS = 8
DRAWS = 3  # subsets per size below the full set, averaged
FIT = "least squares FID_N = FID_inf + k / N over seeded random subsets (Chong & Forsyth, CVPR 2020)"


def subset_sizes(count: int, points: int = POINTS) -> list[int]:
    """Sizes evenly spaced in 1 / N from ``count // 5`` (at least 10) to ``count``."""
    smallest = max(10, count // 5)
    return sorted({int(round(1 / x)) for x in np.linspace(1 / smallest, 1 / count, points)})


def fid_infinity(features: np.ndarray, mu: np.ndarray, sigma: np.ndarray, seed: int = 0,
                 points: int = POINTS, draws: int = DRAWS) -> dict:
    """FID∞ of ``features`` against (mu, sigma), the slope k and the (N, mean FID_N) points of the fit."""
    count = len(features)
    if count < MIN_IMAGES:
        raise ValueError(f"FID∞ needs at least {MIN_IMAGES} images, the run has {count}")
    distance = frechet_resampler(features, mu, sigma)
    rng = np.random.default_rng([seed, count])
    fitted = []
    for size in subset_sizes(count, points):
        repeats = 1 if size == count else draws
        values = [distance(rng.permutation(count)[:size]) for _ in range(repeats)]
        fitted.append((size, float(np.mean(values))))
    sizes, values = np.array(fitted).T
    slope, intercept = np.polyfit(1 / sizes, values, 1)
    return {"value": float(intercept), "slope": float(slope), "points": [[int(n), v] for n, v in fitted],
            "draws": draws, "seed": seed, "fit": FIT}
