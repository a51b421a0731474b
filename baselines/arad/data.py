"""The training pairs: generated offline, or read from a ``datasets_build`` build."""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from datasets_build.sizes import Size

from .config import TrainingError


@dataclass(frozen=True)
class Example:
    """One training pair: a caption and an image (a file, or in memory), with its size."""

    caption: str
    height: int
    width: int
    path: Path | None = None
    image: Image.Image | None = field(default=None, compare=False, repr=False)

    def load(self) -> Image.Image:
        if self.image is not None:
            return self.image
        with Image.open(self.path) as img:
            return img.convert("RGB")


@dataclass(frozen=True)
class TrainingData:
    """The training pairs, what they came from and a hash that identifies them."""

    examples: tuple[Example, ...]
    source: str
    sha256: str

    def __len__(self) -> int:
        return len(self.examples)

    def describe(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "count": len(self.examples)}


#: Ratios (H/W) the generated set draws from: the nine buckets' and some in between.
_GENERATED_RATIOS = (0.5, 0.53, 0.5625, 0.6, 0.625, 0.7, 0.75, 0.85, 1.0, 1.2, 1.333, 1.45, 1.6, 1.7, 1.778, 1.9, 2.0)
GENERATED_VERSION = 1


def generated_training_set(n: int, seed: int = 0, *, long_side: int = 128) -> TrainingData:
    """``n`` procedural image-caption pairs of several aspect ratios (offline, deterministic).

    The images are :func:`datasets_build.sources.synthetic.draw`'s gradients and shapes,
    captioned with what was drawn; ratios range from 0.5 to 2 (wide to tall), with the
    long side ``long_side`` pixels, so Eq. 1 spreads them over every bucket. The same
    (n, seed, long_side) give the same pixels.
    """
    from datasets_build.sources.synthetic import draw

    if n < 1:
        raise TrainingError(f"the generated set needs at least one image, not {n}")
    examples = []
    for k in range(n):
        rng = random.Random(f"arad-generated:{seed}:{k}")
        ratio = _GENERATED_RATIOS[(7 * k + seed) % len(_GENERATED_RATIOS)]  # 7 is coprime to 17: all ratios
        if ratio >= 1:
            h, w = long_side, max(8, round(long_side / ratio))
        else:
            h, w = max(8, round(long_side * ratio)), long_side
        image, caption = draw(Size(h, w), rng)
        examples.append(Example(caption, h, w, image=image))
    digest = hashlib.sha256(f"generated:v{GENERATED_VERSION}:{n}:{seed}:{long_side}".encode()).hexdigest()
    return TrainingData(tuple(examples), f"generated:{n}:seed={seed}:long_side={long_side}", digest)


def manifest_training_set(folder: str | os.PathLike) -> TrainingData:
    """The pairs of a finished ``datasets_build`` build (``arad-train``; any set works).

    The images there are already at their bucket size (for the bucket count the set
    was built with); the hash is that of ``manifest.parquet``, which the builder
    writes byte-reproducibly.
    """
    from datasets_build import iter_items
    from datasets_build.errors import DatasetError
    from datasets_build.manifest import MANIFEST

    folder = Path(folder)
    try:
        items = list(iter_items(folder))
    except DatasetError as exc:
        raise TrainingError(str(exc)) from exc
    if not items:
        raise TrainingError(f"{folder} holds no items")
    examples = tuple(Example(it.caption, it.height, it.width, path=it.image) for it in items)
    digest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    return TrainingData(examples, str(folder.absolute()), digest)


def manifest_sizes(folder: str | os.PathLike) -> list[str] | None:
    """The sizes a build was made for (``build_info.json``), or None if not recorded."""
    from datasets_build.builder import BUILD_INFO

    try:
        info = json.loads((Path(folder) / BUILD_INFO).read_text())
        return list(info["parameters"]["sizes"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None


def load_training_data(spec: str, cache_dir: str | os.PathLike = "data", *, long_side: int = 128) -> TrainingData:
    """``generated:N[:SEED]`` (procedural), or a build folder / data set name for ``datasets_build.resolve``."""
    if spec.startswith("generated"):
        parts = spec.split(":")
        try:
            n = int(parts[1]) if len(parts) > 1 else 64
            seed = int(parts[2]) if len(parts) > 2 else 0
        except ValueError as exc:
            raise TrainingError(f"--data {spec!r}: expected generated:N or generated:N:SEED") from exc
        return generated_training_set(n, seed, long_side=long_side)
    from datasets_build import resolve
    from datasets_build.errors import DatasetError

    try:
        folder = resolve(spec, Path(cache_dir))
    except DatasetError as exc:
        raise TrainingError(str(exc)) from exc
    return manifest_training_set(folder)
