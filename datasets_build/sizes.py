"""Target sizes (H×W) of the data sets and the nearest-ratio rule of the paper (Eq. 1).

The 21 evaluation sizes are a reconstruction (docs/design.md, "Data sets": long side 1024, multiples of
64); the nine ARAD buckets are the paper's Table 5 as read in docs/design.md, "Stage I". Sizes are
always written height first, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Size:
    """A target size, height × width in pixels."""

    height: int
    width: int

    @property
    def ratio(self) -> float:
        """r = H / W, the quantity Eq. 1 compares."""
        return self.height / self.width

    @property
    def name(self) -> str:
        """``"HxW"``, used for folder names and manifest keys."""
        return f"{self.height}x{self.width}"

    def __str__(self) -> str:
        return self.name


def _parse(spec: str) -> tuple[Size, ...]:
    return tuple(Size(*map(int, item.split("x"))) for item in spec.split())


#: The 21 sizes of MA-LAION-COCO and MA-COCO (reconstructed, docs/design.md, "Data sets"), wide to tall.
MA_SIZES: tuple[Size, ...] = _parse(
    "256x1024 320x1024 384x1024 448x1024 512x1024 576x1024 640x1024 704x1024 "
    "768x1024 896x1024 1024x1024 1024x896 1024x768 1024x704 1024x640 1024x576 "
    "1024x512 1024x448 1024x384 1024x320 1024x256"
)

#: The nine ARAD training buckets, in the order of Table 5 (docs/design.md, "Stage I").
ARAD_BUCKETS: tuple[Size, ...] = _parse(
    "512x512 576x768 768x576 576x1024 1024x576 640x1024 1024x640 512x1024 1024x512"
)

#: The MM-CelebA-HQ high-resolution size; the low-resolution input is a quarter of it.
CELEBA_HR = Size(1024, 1024)


def arad_buckets(count: int) -> tuple[Size, ...]:
    """The 3-, 5- or 9-bucket set of Table 3 (our choice: the first rows of Table 5)."""
    if count not in (3, 5, 9):
        raise ValueError(f"ARAD bucket count must be 3, 5 or 9, not {count}")
    return ARAD_BUCKETS[:count]


def nearest(ratios: np.ndarray, sizes: tuple[Size, ...]) -> np.ndarray:
    """Eq. 1: for each ratio r = H/W, the index m of the size minimising |r_m − r|.

    Ties go to the size listed first, so the result never depends on float noise in
    the order of evaluation.
    """
    targets = np.array([s.ratio for s in sizes])
    return np.abs(np.asarray(ratios, dtype=float)[:, None] - targets[None, :]).argmin(axis=1)


def cover_box(width: int, height: int, size: Size) -> tuple[int, int, int, int]:
    """The centred crop (left, top, right, bottom) of a W×H image that has the target ratio.

    Scaling this box to the target size is "scale the short side to cover, then
    centre-crop": nothing is distorted and the lost border is split evenly.
    """
    if height * size.width > width * size.height:  # taller than the target: cut rows
        crop_h = min(height, max(1, round(width * size.height / size.width)))
        top = (height - crop_h) // 2
        return (0, top, width, top + crop_h)
    crop_w = min(width, max(1, round(height * size.width / size.height)))
    left = (width - crop_w) // 2
    return (left, 0, left + crop_w, height)


def box_scale(box: tuple[int, int, int, int], size: Size) -> float:
    """How much the crop box is enlarged to reach the target (> 1 means upscaling)."""
    return max(size.width / (box[2] - box[0]), size.height / (box[3] - box[1]))
