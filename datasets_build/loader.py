"""What the benchmark calls: find a built data set and read its items."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from filelock import FileLock

from .builder import BUILD_INFO, build
from .errors import DatasetError, NotBuiltError
from .manifest import MANIFEST, read_manifest
from .sets import SETS


@dataclass(frozen=True)
class Item:
    """One evaluation item: a caption, its target size and reference image(s)."""

    id: str
    caption: str
    height: int  # target size, H × W
    width: int
    image: Path  # reference image at the target size
    lr_image: Path | None  # low-resolution input (LR/HR sets only)


def is_built(folder: Path) -> bool:
    """Whether ``folder`` holds a finished build (build_info.json is written last)."""
    return (folder / BUILD_INFO).is_file() and (folder / MANIFEST).is_file()


def resolve(spec: str, cache_dir: Path) -> Path:
    """The folder of a finished build, from its path or from a data set name.

    ``synthetic`` is built into ``cache_dir/synthetic`` when absent; other names are
    looked up as ``cache_dir/NAME`` and must have been built with the CLI.
    """
    folder = Path(spec)
    if folder.is_dir():
        if not is_built(folder):
            raise NotBuiltError(f"{folder} is not a finished build (no {BUILD_INFO}); rerun its build command to resume it")
        return folder
    if spec not in SETS:
        raise DatasetError(f"{spec!r} is neither a folder nor a data set name ({', '.join(SETS)})")
    cached = Path(cache_dir) / spec
    if is_built(cached):
        return cached
    if SETS[spec].generated:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(cached.parent / f".{spec}.lock"):  # processes sharing a cache build it once
            return cached if is_built(cached) else build(spec, cached)
    raise NotBuiltError(
        f"data set {spec!r} is not built in {cached}; build it with\n"
        f"  python -m datasets_build {spec} --source DIR --out {cached}\n"
        f"where DIR is the {SETS[spec].source_help} (see docs/datasets.md)"
    )


def iter_items(folder: Path) -> Iterator[Item]:
    """The items of a finished build, in manifest order (by size, then id)."""
    folder = Path(folder)
    if not is_built(folder):
        raise NotBuiltError(f"{folder} is not a finished build (no {BUILD_INFO})")
    for row in read_manifest(folder).itertuples():
        yield Item(
            id=row.id,
            caption=row.caption,
            height=int(row.target_height),
            width=int(row.target_width),
            image=folder / row.image,
            lr_image=folder / row.lr_image if isinstance(row.lr_image, str) else None,
        )
