"""Safe decoding of untrusted source images into plain 8-bit RGB, and atomic writing.

Raw releases hold every kind of odd file; this module turns each one into either a
correct RGB image or a :class:`DecodeError` with a reason the build counts. Rules
(documented in docs/datasets.md):

* sizes are after EXIF orientation (``ImageOps.exif_transpose``);
* anything with transparency (RGBA, LA, PA, a palette or grey image with a tRNS
  entry) is composited on white, because a black or undefined background would
  be a wrong reference image;
* 16-bit grey is scaled to 8 bits (65535 → 255), not clipped;
* grey, bilevel, palette, CMYK and YCbCr are converted with Pillow's own
  conversions; embedded ICC profiles are ignored, as in clean-fid;
* 32-bit integer and float images have no defined display range: skipped;
* truncated or unreadable files raise (Pillow's ``LOAD_TRUNCATED_IMAGES`` stays off).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps

from .errors import DecodeError
from .sizes import Size

_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_UNSUPPORTED_MODES = {"I", "F"}


@dataclass(frozen=True)
class Header:
    """What the file header says, without decoding the pixels."""

    width: int  # after EXIF orientation
    height: int
    raw_width: int  # as stored in the file
    raw_height: int
    mode: str
    orientation: int
    has_alpha: bool


def read_header(fp: BinaryIO) -> Header:
    """Size, mode and orientation from the header; raises DecodeError if unreadable."""
    try:
        with Image.open(fp) as img:
            orientation = int(img.getexif().get(ExifTags.Base.Orientation, 1) or 1)
            raw_w, raw_h = img.size
            mode, has_alpha = img.mode, img.has_transparency_data
    except Exception as exc:  # decoders of untrusted files raise anything
        raise DecodeError("corrupt", f"{type(exc).__name__}: {exc}") from exc
    if mode in _UNSUPPORTED_MODES:
        raise DecodeError("unsupported_mode", f"mode {mode} has no defined 8-bit range")
    if orientation not in range(1, 9):
        orientation = 1
    w, h = (raw_h, raw_w) if orientation in _SWAPPING_ORIENTATIONS else (raw_w, raw_h)
    return Header(w, h, raw_w, raw_h, mode, orientation, has_alpha)


def decode_rgb(fp: BinaryIO) -> Image.Image:
    """Fully decode, apply EXIF orientation and normalise to RGB (rules in the module doc)."""
    try:
        with Image.open(fp) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            return to_rgb(upright)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError("corrupt", f"{type(exc).__name__}: {exc}") from exc


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any supported mode to RGB; transparency is composited on white."""
    if img.mode in _UNSUPPORTED_MODES:
        raise DecodeError("unsupported_mode", f"mode {img.mode} has no defined 8-bit range")
    if img.mode.startswith("I;16"):
        wide = np.asarray(img).astype(np.uint32)
        img = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8))
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def fit(img: Image.Image, size: Size, box: tuple[int, int, int, int]) -> Image.Image:
    """Crop ``box`` and resize it to ``size`` (bicubic; Pillow antialiases when shrinking)."""
    if box == (0, 0, img.width, img.height) and img.size == (size.width, size.height):
        return img
    return img.resize((size.width, size.height), Image.Resampling.BICUBIC, box=box)


def downscale(img: Image.Image, factor: int) -> Image.Image:
    """The low-resolution input: bicubic, antialiased by Pillow's filter support."""
    return img.resize((img.width // factor, img.height // factor), Image.Resampling.BICUBIC)


def save_png_atomic(img: Image.Image, path: Path) -> None:
    """Write a PNG so that ``path`` either does not exist or is complete (resumable builds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    img.save(tmp, format="PNG", compress_level=6)
    os.replace(tmp, path)
