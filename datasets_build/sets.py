"""The buildable data sets: which reader, sizes and rules each one uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .sizes import CELEBA_HR, MA_SIZES, Size, arad_buckets
from .sources import Sample, celeba, coco, img2dataset


@dataclass(frozen=True)
class DataSet:
    """How one data set is built from its raw release."""

    name: str
    summary: str
    reader: Callable[[Path, Path | None], Iterator[Sample]]
    sizes: tuple[Size, ...]
    per_ratio: int | None  # default number per size; None keeps every candidate
    borrow: bool  # fill short sizes with centre-cropped nearest-ratio images
    lr_factor: int | None = None  # also write a low-resolution copy, this many times smaller
    max_upscale: float | None = None  # fixed upscale limit; None lets --max-upscale decide
    source_help: str = ""
    generated: bool = False
    per_ratio_option: bool = True  # whether --per-ratio applies


SETS: dict[str, DataSet] = {
    s.name: s
    for s in (
        DataSet(
            "ma-coco",
            "MS-COCO captions, 21 ratios x 100 (docs/design.md, 'Data sets')",
            coco.entries,
            MA_SIZES,
            per_ratio=100,
            borrow=True,
            source_help="COCO root with annotations/captions_val2014.json and val2014/ (or the JSON; images as --source2)",
        ),
        DataSet(
            "ma-laion-coco",
            "LAION-COCO via img2dataset, 21 ratios x 1,000 (docs/design.md, 'Data sets')",
            img2dataset.entries,
            MA_SIZES,
            per_ratio=1000,
            borrow=True,
            source_help="img2dataset output folder (files or webdataset layout)",
        ),
        DataSet(
            "mm-celeba-hq",
            "Multi-Modal-CelebA-HQ test split, HR 1024² / LR 256² pairs (docs/design.md, 'Data sets')",
            celeba.entries,
            (CELEBA_HR,),
            per_ratio=None,
            borrow=False,
            lr_factor=4,
            max_upscale=1.0,
            per_ratio_option=False,
            source_help="Multi-Modal-CelebA-HQ folder (text/, test/filenames.pickle); CelebAMask-HQ as --source2",
        ),
        DataSet(
            "arad-train",
            "ARAD training manifest, images bucketed by Eq. 1 (docs/design.md, 'Stage I')",
            img2dataset.entries,
            arad_buckets(9),
            per_ratio=None,
            borrow=False,
            source_help="img2dataset output folder (files or webdataset layout)",
        ),
        DataSet(
            "synthetic",
            "procedural shapes and gradients, all 21 sizes with LR/HR pairs, offline",
            img2dataset.entries,
            MA_SIZES,
            per_ratio=1,
            borrow=True,
            lr_factor=4,
            generated=True,
        ),
    )
}

