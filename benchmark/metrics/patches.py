"""Crops at native resolution for patch FID / KID (``fid_patch``, ``kid_patch``).

Whole-image FID resizes a 4096-px image to 299 px and so hides exactly the defects tiling
causes; DemoFusion, ScaleCrafter and HiDiffusion therefore also report FID on crops
("FID_c"), with protocols they do not publish. Here the protocol is explicit, seeded and
recorded with every score. Crops are 299 px, Inception's input, so the network sees native
pixels (clean-fid's resize of a 299-px crop is the identity); an image smaller than the
crop along a side gives no crop, and a set with fewer than two crops gets no patch score,
with the reason recorded (never an upscaled crop).

- ``grid``: non-overlapping crops from the top-left corner, then a second pass shifted by
  half a crop (149 px) on both axes where the image still holds a whole crop, as HiFiC's
  FID/256 does (Mentzer et al. 2020). A 700 x 1000 image gives 2 x 3 + 1 x 2 = 8 crops.
- ``random:K[:SEED]``: K crops per image at uniform positions from
  ``numpy.random.default_rng([SEED, image index])`` (SEED 0 by default), so crops do not
  depend on the order images are read in batches and a run replays exactly.
- ``random:K[:SEED]@SIDE``: the same with SIDE-px crops, which the feature extractor then
  resizes to 299 px as its clean-fid mode does: the published protocols that crop at the
  base model's native side (DemoFusion's FID_c, :mod:`benchmark.metrics.presets`).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from .images import ImageLike, to_rgb_array
from .inception import RESIZE_CONVENTION, RESIZE_CONVENTIONS, InceptionOutputs, InceptionV3, inception_outputs

CROP = 299
DEFAULT_PROTOCOL = "grid"


@dataclass(frozen=True)
class PatchProtocol:
    """How crops are cut from each image: ``grid`` or ``random`` (K per image, seeded)."""

    kind: str = "grid"
    per_image: Optional[int] = None
    seed: int = 0
    crop: int = CROP

    @classmethod
    def parse(cls, text: str) -> "PatchProtocol":
        """``grid``, ``random:K``, ``random:K:SEED``, either random form with ``@SIDE`` (crop side in px)."""
        if text == "grid":
            return cls()
        match = re.fullmatch(r"random:(\d+)(?::(\d+))?(?:@(\d+))?", text)
        if not match or int(match[1]) < 1 or (match[3] is not None and int(match[3]) < 1):
            raise ValueError(f"patch protocol must be 'grid', 'random:K' or 'random:K:SEED' with K >= 1 (and "
                             f"optionally '@SIDE', the crop side in px), got {text!r}")
        return cls("random", int(match[1]), int(match[2] or 0), int(match[3] or CROP))

    @property
    def label(self) -> str:
        if self.kind == "grid":
            return "grid"
        return f"random:{self.per_image}:{self.seed}" + ("" if self.crop == CROP else f"@{self.crop}")

    @property
    def shift(self) -> int:
        """The grid's second pass starts this many px down and right of the first."""
        return self.crop // 2

    def as_dict(self) -> dict:
        if self.kind == "grid":
            return {"protocol": "grid", "crop_px": self.crop, "passes": "non-overlapping, then shifted by "
                    f"{self.shift} px on both axes where a whole crop fits"}
        return {"protocol": "random", "crop_px": self.crop, "per_image": self.per_image, "seed": self.seed,
                "positions": "uniform, numpy.random.default_rng([seed, image index])"}

    def boxes(self, height: int, width: int, index: int) -> list[tuple[int, int]]:
        """Top-left corners of the crops of image number ``index`` of a set, of size height x width."""
        if height < self.crop or width < self.crop:
            return []
        if self.kind == "grid":
            return [(top, left) for start in (0, self.shift)
                    for top in range(start, height - self.crop + 1, self.crop)
                    for left in range(start, width - self.crop + 1, self.crop)]
        rng = np.random.default_rng([self.seed, index])
        tops = rng.integers(0, height - self.crop + 1, self.per_image)
        lefts = rng.integers(0, width - self.crop + 1, self.per_image)
        return [(int(top), int(left)) for top, left in zip(tops, lefts)]


def crop_summary(sizes: Sequence[tuple[int, int]], protocol: PatchProtocol) -> dict:
    """What a protocol makes of images of these (height, width): crops, images without any, the sizes."""
    counts = [len(protocol.boxes(h, w, i)) for i, (h, w) in enumerate(sizes)]
    return {"images": len(sizes), "crops": sum(counts), "images_without_crops": counts.count(0),
            "resolution": {f"{h}x{w}": n for (h, w), n in sorted(Counter(map(tuple, sizes)).items())}}


def patch_conventions(net: InceptionV3, protocol: PatchProtocol, mode: str = "clean") -> dict:
    """The conventions of patch features: the Inception pass's, plus the crop protocol."""
    resize = RESIZE_CONVENTION + " (the identity on 299-px crops)" if (mode, protocol.crop) == ("clean", CROP) \
        else f"{RESIZE_CONVENTIONS[mode]} (of {protocol.crop}-px crops)"
    return {"resize": resize, **net.conventions, "crops": protocol.as_dict()}


def patch_outputs(images: Iterable[ImageLike], net: InceptionV3, protocol: PatchProtocol,
                  batch_size: int = 32, mode: str = "clean") -> InceptionOutputs:
    """Inception features and logits of every crop of ``images``, image by image, crop by crop, each resized
    to 299 px as clean-fid's ``mode`` does (the identity on 299-px crops)."""

    def crops():
        for index, image in enumerate(images):
            pixels = to_rgb_array(image)
            for top, left in protocol.boxes(*pixels.shape[:2], index):
                yield pixels[top:top + protocol.crop, left:left + protocol.crop]

    outputs = inception_outputs(crops(), net, batch_size, mode)
    return InceptionOutputs(outputs.features, outputs.logits, patch_conventions(net, protocol, mode))
