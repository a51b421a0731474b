"""One input convention for every metric: HxWx3 uint8 RGB arrays.

Generated images come in many aspect ratios and as files, PIL images or arrays; each
metric resizes on its own terms (clean-fid, CLIP preprocessing), so only the pixel
format is unified here, never the size.
"""
from __future__ import annotations

from os import PathLike
from typing import Union

import numpy as np
from PIL import Image

ImageLike = Union[str, PathLike, Image.Image, np.ndarray]


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """HxWx3 uint8 RGB from a path, a PIL image or a uint8 array (HxW, HxWx3 or HxWx4)."""
    if isinstance(image, (str, PathLike)):
        with Image.open(image) as opened:
            return np.asarray(opened.convert("RGB"))
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image array, got {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[..., :3])
    raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {array.shape}")
