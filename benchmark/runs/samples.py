"""The samples of a model run: a data set's items, in an order that spreads any prefix over sizes.

A model run draws its samples from a built data set (``datasets_build``): each item gives
a caption, the exact target size and a reference image (and, for LR/HR sets, the
low-resolution input of ``fstd``). ``--limit N`` takes the first N samples, so the order
decides what a short run measures: sizes are sorted into wide, square-ish and tall, taken
in turn from the three (each group cheapest first, then the size farthest in ratio from
those taken), and items are interleaved over the sizes. The first three of the MA sizes
are 256x1024, 768x1024 and 1024x256: three shapes at the cost of one megapixel each.
``--prompt`` / ``--size`` replace the items' captions / sizes, and the plan says so. With
the captions replaced the set's images are no references for the outputs; with only the
sizes replaced they still are (the field scores its 2048² and 4096² tables against a set of
smaller images: FID on resized images, patch scores on native crops), but the run is no
longer one of the set's own sizes, which the paper's tables compare (:func:`benchmark.runs.records.on_set_items`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Iterable, Optional

from PIL import Image

from benchmark.metrics import manifest_hash
from datasets_build import Item, Size, iter_items, resolve
from datasets_build.builder import BUILD_INFO
from datasets_build.images import downscale, fit
from datasets_build.manifest import MANIFEST
from datasets_build.sizes import cover_box

DEFAULT_DATASET = "synthetic"
#: Ratios H/W below WIDE are wide, above TALL tall, between them square-ish.
WIDE, TALL = 3 / 4, 4 / 3


@dataclass(frozen=True)
class Sample:
    """One sample: what to generate, and the data set item it came from (None for a bare prompt)."""

    caption: str
    size: tuple[int, int]
    item: Optional[str] = None
    image: Optional[Path] = None  # the item's image, at the item's own size
    lr_image: Optional[Path] = None

    def as_record(self) -> dict:
        return {"item": self.item, "prompt": self.caption, "size": list(self.size)}

    def high_resolution(self) -> Image.Image:
        """fstd's HR image at the sample's size: the item's image, cover-cropped when --size changed it."""
        with Image.open(self.image) as opened:
            image = opened.convert("RGB")
        target = Size(*self.size)
        if image.size == (target.width, target.height):
            return image
        return fit(image, target, cover_box(image.width, image.height, target))

    def low_resolution(self, high: Image.Image, factor: int) -> Image.Image:
        """fstd's input: the set's LR image where it matches ``factor``, else ``high`` downscaled by it."""
        if self.lr_image is not None:
            with Image.open(self.lr_image) as opened:
                low = opened.convert("RGB")
            if (low.width * factor, low.height * factor) == high.size:
                return low
        return downscale(high, factor)


@dataclass(frozen=True)
class DataSetInfo:
    """Which data set a run used; ``run.json`` keeps it so a resume cannot switch sets."""

    name: str
    folder: Path
    manifest_hash: str
    items: int

    def as_record(self) -> dict:
        return {"name": self.name, "folder": str(self.folder), "manifest_hash": self.manifest_hash,
                "items": self.items}


@dataclass(frozen=True)
class Plan:
    """A run's samples, their data set, what of the set's items the options replaced (None: nothing) and
    whether that includes the captions (then the set's images are no references)."""

    samples: tuple[Sample, ...]
    dataset: Optional[DataSetInfo]
    replaced: Optional[str] = None
    captions_replaced: bool = False

    @property
    def references(self) -> Optional[DataSetInfo]:
        """The data set whose images are the outputs' references, None when there is none."""
        return None if self.captions_replaced else self.dataset

    def as_record(self) -> dict:
        """For ``run.json``: the set (with the planned item ids) and the plan, so a resume cannot switch either."""
        source = None if self.dataset is None else {**self.dataset.as_record(),
                                                    "item_ids": [s.item for s in self.samples]}
        return {"dataset": source if self.references else None,
                "inputs": {"dataset": source, "replaced": self.replaced},
                "samples_plan": [s.as_record() for s in self.samples]}


def _shape(size: tuple[int, int]) -> int:
    ratio = size[0] / size[1]
    return 0 if ratio < WIDE else 2 if ratio > TALL else 1


def _spread(sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cheapest (then widest) size first, then each time the one farthest in log-ratio from those taken."""
    def cost(size):
        return (size[0] * size[1], size[0] / size[1])

    left = sorted(sizes, key=cost)
    taken = [left.pop(0)] if left else []
    while left:
        def distance(size):
            return min(abs(math.log(size[0] / size[1]) - math.log(t[0] / t[1])) for t in taken)
        best = max(left, key=lambda s: (distance(s), tuple(-c for c in cost(s))))
        left.remove(best)
        taken.append(best)
    return taken


def spread_order(items: Iterable[Item]) -> list[Item]:
    """Items ordered so that every prefix covers as many sizes and shapes as it can (module docstring)."""
    by_size: dict[tuple[int, int], list[Item]] = {}
    for item in items:
        by_size.setdefault((item.height, item.width), []).append(item)
    groups = [_spread([s for s in by_size if _shape(s) == shape]) for shape in (0, 1, 2)]
    sizes = [s for round_ in zip_longest(*groups) for s in round_ if s is not None]
    for members in by_size.values():
        members.sort(key=lambda item: item.id)
    depth = max((len(members) for members in by_size.values()), default=0)
    return [by_size[s][k] for k in range(depth) for s in sizes if k < len(by_size[s])]


def load_dataset(spec: str, cache_dir: Path) -> tuple[DataSetInfo, list[Item]]:
    """The data set named or found at ``spec`` (``synthetic`` is built on first use), its items spread out."""
    folder = resolve(spec, cache_dir)
    name = json.loads((folder / BUILD_INFO).read_text()).get("name") or folder.name
    items = spread_order(iter_items(folder))
    info = DataSetInfo(name, folder.resolve(), manifest_hash([], folder / MANIFEST), len(items))
    return info, items


def plan_samples(spec: str, cache_dir: Path, prompt: Optional[str] = None,
                 size: Optional[tuple[int, int]] = None) -> Plan:
    """The samples of a run: the set's items, or one prompt at one size when both are given."""
    if prompt is not None and size is not None:
        return Plan((Sample(prompt, size),), None, "--prompt and --size replace the data set", True)
    info, items = load_dataset(spec, cache_dir)
    samples = tuple(Sample(prompt or item.caption, size or (item.height, item.width), item.id,
                           item.image, item.lr_image) for item in items)
    reasons = [f"{option} replaced the data set's {what}"
               for option, what, given in (("--prompt", "captions", prompt), ("--size", "sizes", size))
               if given is not None]
    return Plan(samples, info, "; ".join(reasons) or None, prompt is not None)

