"""Detail without weights: Diffusion-4K's GLCM score and compression ratio (Zhang et al., CVPR 2025, §5.1).

Diffusion-4K found that MUSIQ and MANIQA follow people's judgement of 4K detail far less than two
plain statistics do, so it scores fine detail with no network at all. Its release
(zhang0jhon/diffusion-4k, ``eval.py`` at 302ff1b) pins the definitions, which this module follows:

* the images are scored as the release stores them: JPEG at quality 95 (its ``test_*.py`` save so),
  decoded again; our runs keep lossless PNGs, so the JPEG is made in memory (PIL, quality 95);
* **GLCM score**: the image in grey (OpenCV's BGR→grey: BT.601 weights in 14-bit fixed point),
  quantised to 64 levels (``v // 4``), cut into non-overlapping 64×64 patches; per patch the grey-level
  co-occurrence matrix at distances 1–4 and angles 0, π/4, π/2, 3π/4 (64 levels, normalised, not
  symmetric: scikit-image's defaults), scored by scikit-image's ``shannon_entropy`` *of that matrix*
  (the entropy of the histogram of its values, as the release computes it); the image's score is the
  patches' mean, the run's the images' mean. Higher: more varied local texture;
* **compression ratio**: raw RGB bytes over JPEG bytes, summed over the images (the release's ratio of
  sums). Lower: more detail that the codec cannot discard.

Ours, where the release is silent: it reads square images whose side is a multiple of 64; here a side's
leftover pixels (``side % 64``) are left out, and patches run from the top-left corner, as its loops do.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy.stats import entropy
from skimage.feature import graycomatrix

from benchmark.metrics.images import to_rgb_array
from benchmark.metrics.registry import TEXT_TO_IMAGE, SUPER_RESOLUTION, MetricValue, register_metric

if TYPE_CHECKING:
    from benchmark.metrics.context import ScoringContext

SOURCE = "Diffusion-4K (Zhang et al., CVPR 2025), eval.py of zhang0jhon/diffusion-4k at 302ff1b"
JPEG_QUALITY = 95
PATCH = 64
LEVELS = 64
DISTANCES = (1, 2, 3, 4)
ANGLES = (0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)


def stored_as_released(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """The image after the release's JPEG round trip (quality 95), and the JPEG's size in bytes."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    size = buffer.tell()
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")), size


def grey64(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's ``COLOR_BGR2GRAY`` (R 4899, G 9617, B 1868 over 2**14, rounded) quantised to 64 levels."""
    weights = np.array([4899, 9617, 1868], dtype=np.int64)
    grey = (rgb.astype(np.int64) @ weights + (1 << 13)) >> 14
    return (grey // (256 // LEVELS)).astype(np.uint8)


def value_entropy(matrix: np.ndarray) -> float:
    """``skimage.measure.shannon_entropy(matrix)`` (the entropy, in bits, of the histogram of the matrix's
    values) with the zeros counted rather than sorted: a 64-level GLCM has 65,536 entries, mostly zero,
    and sorting them all cost twice the GLCM itself. Equal to scikit-image's (tested)."""
    nonzero = matrix[matrix != 0]
    _, counts = np.unique(nonzero, return_counts=True)
    if nonzero.size < matrix.size:
        counts = np.append(counts, matrix.size - nonzero.size)
    return float(entropy(counts, base=2))


def glcm_entropies(grey: np.ndarray) -> np.ndarray:
    """Per whole 64×64 patch (row-major), the entropy of the values of its normalised GLCM at distances
    1–4 and the four angles (scikit-image's ``graycomatrix``, 64 levels): the release's per-patch score."""
    rows, cols = grey.shape[0] // PATCH, grey.shape[1] // PATCH
    if not rows or not cols:
        raise ValueError(f"the GLCM score needs at least one {PATCH}x{PATCH} patch; the image is "
                         f"{grey.shape[0]}x{grey.shape[1]}")
    return np.array([value_entropy(graycomatrix(grey[i * PATCH:(i + 1) * PATCH, j * PATCH:(j + 1) * PATCH],
                                                DISTANCES, ANGLES, levels=LEVELS, normed=True))
                     for i in range(rows) for j in range(cols)])


def glcm_image_score(rgb: np.ndarray) -> float:
    """The mean of the patch entropies (:func:`glcm_entropies`) of an image in grey at 64 levels."""
    return float(np.mean(glcm_entropies(grey64(rgb))))


def _released(context: "ScoringContext") -> list[tuple[np.ndarray, int, int]]:
    """Each image as the release stores it: (decoded pixels, JPEG bytes, raw RGB bytes); made once per scoring."""
    def make():
        out = []
        for path in context.images:
            rgb = to_rgb_array(Path(path))
            decoded, jpeg_bytes = stored_as_released(rgb)
            out.append((decoded, jpeg_bytes, rgb.size))
        return out
    return context.cached("diffusion-4k: jpeg q95", make)


def _conventions(context: "ScoringContext", **extra) -> dict:
    return context.convention("scikit-image", f"images as JPEG quality {JPEG_QUALITY}, decoded", None, None,
                              nets_random=False, source=SOURCE, **extra)


@register_metric(applies_to=(TEXT_TO_IMAGE, SUPER_RESOLUTION), tolerance={"rel": 1e-3}, higher_is_better=True,
                 column="GLCM↑", digits=3, source=SOURCE)
def glcm_score(context: "ScoringContext") -> MetricValue:
    """Diffusion-4K's GLCM score (module docstring): texture richness per 64-px patch."""
    values = [glcm_image_score(decoded) for decoded, _, _ in _released(context)]
    return MetricValue(float(np.mean(values)),
                       _conventions(context, grey="OpenCV BT.601 fixed point, 64 levels (v // 4)", patch_px=PATCH,
                                    distances=list(DISTANCES), angles="0, pi/4, pi/2, 3pi/4",
                                    statistic="shannon_entropy of the normalised GLCM (its values' histogram)",
                                    leftover="each side's last side % 64 px are not scored (ours)"),
                       per_image=values)


@register_metric(applies_to=(TEXT_TO_IMAGE, SUPER_RESOLUTION), tolerance={"rel": 1e-3}, higher_is_better=False,
                 column="compression↓", digits=2, source=SOURCE)
def compression_ratio(context: "ScoringContext") -> MetricValue:
    """Diffusion-4K's compression ratio: raw RGB bytes over JPEG bytes, a ratio of sums over the images."""
    stored = _released(context)
    raw = np.array([raw_bytes for _, _, raw_bytes in stored], dtype=np.float64)
    jpeg = np.array([jpeg_bytes for _, jpeg_bytes, _ in stored], dtype=np.float64)
    return MetricValue(float(raw.sum() / jpeg.sum()),
                       _conventions(context, codec=f"PIL JPEG quality {JPEG_QUALITY}",
                                    statistic="sum of H*W*3 over the sum of JPEG bytes (the release's ratio of sums)"),
                       per_image=[float(r / j) for r, j in zip(raw, jpeg)],
                       resample=lambda positions: float(raw[positions].sum() / jpeg[positions].sum()))


__all__ = ["glcm_score", "compression_ratio", "glcm_entropies", "glcm_image_score", "value_entropy", "grey64", "stored_as_released"]
