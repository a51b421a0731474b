"""A finished data set build of a few small items, written directly, for the model-run tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from datasets_build.builder import BUILD_INFO
from datasets_build.images import downscale
from datasets_build.manifest import write_manifest
from datasets_fixtures import gradient


def make_dataset(folder: Path, sizes, name: str = "mini", lr_factor: int | None = 4) -> Path:
    """``folder`` as a finished build of one item per entry of ``sizes`` (H, W), LR images if asked."""
    rows = []
    for index, (height, width) in enumerate(sizes):
        item = f"{name}-{index:03d}"
        image = gradient(width, height, seed=index)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        image.save(folder / "images" / f"{item}.png")
        lr = None
        if lr_factor:
            (folder / "lr").mkdir(exist_ok=True)
            downscale(image, lr_factor).save(folder / "lr" / f"{item}.png")
            lr = f"lr/{item}.png"
        rows.append(dict(id=item, caption=f"a gradient number {index}", caption_index=0,
                         target_height=height, target_width=width, ratio=height / width,
                         image=f"images/{item}.png", lr_image=lr, source_path=f"{item}.png",
                         source_member=None, source_sha256="0" * 64, orig_height=height,
                         orig_width=width, source_ratio=height / width, crop_box=[0, 0, width, height],
                         scale=1.0, assignment="nearest", source_mode="RGB", exif_orientation=1))
    write_manifest(pd.DataFrame(rows), folder)
    (folder / BUILD_INFO).write_text(json.dumps({"name": name}))
    return folder
