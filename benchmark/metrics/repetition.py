"""The repetition score: how many extra copies of its own content an image holds, at the base model's scale.

The failure users of high-resolution methods see first is the repeated object: a model asked for four
times its native area paints its native composition several times over. No published metric measures
it, so this one is ours (docs/metrics.md, "Repetition"). It needs no weights:

1. the image in grey, resized so that the base model's native side spans :data:`ANALYSIS_PX` pixels:
   content is compared at the scale the model composes at, so an upscale (larger structures) and fine
   periodic texture (averaged away) look as they would to a person judging "the same thing twice";
2. band-passed (a Gaussian of 1 px minus one of :data:`SURROUND_PX`): flat areas, gradients and a plain
   background become zero and carry no weight, only the structure of things remains;
3. its linear autocorrelation R (zero-padded FFT), divided by R at lag 0 (the image's energy);
4. the score is the sum of R's local maxima at lags of at least :data:`MIN_LAG_PX` (a quarter of the
   native side: nearer is one object's own structure) that reach :data:`PEAK`.

Why the sum of peaks: an image made of k identical copies has autocorrelation peaks at the copies'
relative offsets, each the fraction of energy they share; over a g×g grid these add up to
(Σ_a (1 - |a|/g))² - 1 = g² - 1 = k - 1, and for k copies of an object on a plain background to
k(k-1)/k = k - 1 as well. So the score reads as "extra copies": 0 for an image without repeats, 1 for a
duplicate, 3 for four copies (minus the peaks of far offsets below :data:`PEAK`). Tests hold it to
constructed images: rising with the count of copies, low for an upscale, flat noise, fine texture and a
plain background.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, maximum_filter

from baselines.base_models import get_base_model
from benchmark.metrics.images import to_rgb_array
from benchmark.metrics.registry import TEXT_TO_IMAGE, MetricValue, register_metric
from benchmark.runs.records import model_of

if TYPE_CHECKING:
    from benchmark.metrics.context import ScoringContext

ANALYSIS_PX = 64  # the native side, resized to this
SURROUND_PX = 8.0  # σ of the band-pass's low-pass: structure up to about a quarter of the native side
MIN_LAG_PX = 16  # a quarter of the native side: nearer lags are one object's own structure
PEAK = 0.2  # a shared fraction of energy below this is not counted (noise peaks of unrelated content)
NEIGHBOURHOOD = 5  # px: a peak is the largest value in this square around it
FLAT = 1e-6  # mean squared band-pass response (grey in [0, 1]) below which an image is flat: score 0


def analysis_image(rgb: np.ndarray, native_side: int) -> np.ndarray:
    """Grey (BT.601) in [0, 1], box-resized so that ``native_side`` image px become :data:`ANALYSIS_PX`."""
    grey = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0
    scale = ANALYSIS_PX / native_side
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    return np.asarray(Image.fromarray(grey, mode="F").resize(size, Image.Resampling.BOX), dtype=np.float64)


def band_pass(grey: np.ndarray) -> np.ndarray:
    """Structure between 1 px and :data:`SURROUND_PX` (analysis px): flat areas and gradients go to zero."""
    return gaussian_filter(grey, 1.0) - gaussian_filter(grey, SURROUND_PX)


def normalised_autocorrelation(signal: np.ndarray) -> np.ndarray:
    """Linear (zero-padded) autocorrelation, lag 0 at the centre, divided by its value there."""
    height, width = signal.shape
    spectrum = np.fft.rfft2(signal, s=(2 * height, 2 * width))
    correlation = np.fft.fftshift(np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * height, 2 * width)))
    return correlation / correlation[height, width]


def repetition_score(rgb: np.ndarray, native_side: int) -> float:
    """The image's extra copies of itself (module docstring): the sum of distant autocorrelation peaks."""
    signal = band_pass(analysis_image(rgb, native_side))
    if np.mean(signal ** 2) < FLAT:
        return 0.0
    correlation = normalised_autocorrelation(signal)
    centre = np.array(correlation.shape) // 2
    rows, cols = np.indices(correlation.shape)
    far = np.hypot(rows - centre[0], cols - centre[1]) >= MIN_LAG_PX
    peaks = far & (correlation >= PEAK) & (correlation == maximum_filter(correlation, size=NEIGHBOURHOOD))
    return float(correlation[peaks].sum())


def native_side(results: dict) -> int:
    """The run's base model's native side (the larger one), SD 2.1's for runs that name none."""
    return max(get_base_model(model_of(results)).native_size)


@register_metric(applies_to=(TEXT_TO_IMAGE,), tolerance={"rel": 1e-3, "abs": 1e-3}, higher_is_better=False,
                 column="repetition↓", digits=2,
                 source='ours: distant self-similarity of band-passed grey at the base model\'s native scale '
                        '(docs/metrics.md, "Repetition")')
def repetition(context: "ScoringContext") -> MetricValue:
    """The mean repetition score of the run's images (module docstring)."""
    side = native_side(context.results)
    values = [repetition_score(to_rgb_array(Path(path)), side) for path in context.images]
    return MetricValue(float(np.mean(values)),
                       context.convention("benchmark.metrics.repetition", "sum of distant autocorrelation peaks "
                                          "of the band-passed grey image at the native scale", None, None,
                                          nets_random=False, native_side_px=side, analysis_px=ANALYSIS_PX,
                                          surround_px=SURROUND_PX, min_lag_px=MIN_LAG_PX, peak=PEAK,
                                          neighbourhood_px=NEIGHBOURHOOD, source="ours (docs/metrics.md)"),
                       per_image=values)


__all__ = ["repetition", "repetition_score", "analysis_image", "band_pass", "normalised_autocorrelation"]
