"""MS-COCO captions (2014 or 2017): ``annotations/captions_{split}.json`` and ``{split}/``.

The JSON has ``images`` ({id, file_name, height, width}) and ``annotations``
({image_id, caption}); each image has about five captions. ``--source`` is the COCO
root (holding exactly one ``annotations/captions_*.json``) or the JSON file itself;
the image folder is ``--source2`` or, by default, the folder named after the split
(``val2014/`` for ``captions_val2014.json``) next to ``annotations/``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterator

from ..errors import LayoutError
from . import Entry, Sample, Skip, clean_captions, require_samples

_EXPECTED = (
    "expected a COCO root holding annotations/captions_val2014.json (or captions_val2017.json) "
    "and the image folder val2014/ (or val2017/), or the captions JSON itself as --source "
    "with the image folder as --source2"
)


def entries(source: Path, source2: Path | None = None) -> Iterator[Sample]:
    """One sample per entry of ``images``, in id order, then the unmatched captions."""
    captions_file, image_dir = _locate(source, source2)
    images, annotations = _load(captions_file)
    by_image: dict[int, list[str]] = defaultdict(list)
    for ann in annotations:
        by_image[ann["image_id"]].append(ann["caption"] if isinstance(ann["caption"], str) else "")
    counts = Counter(img["id"] for img in images)
    return require_samples(_samples(images, by_image, counts, image_dir), f"{captions_file} lists no images")


def _samples(images: list[dict], by_image: dict, counts: Counter, image_dir: Path) -> Iterator[Sample]:
    for img in sorted(images, key=lambda i: i["id"]):
        sample_id, name = str(img["id"]), str(img["file_name"])
        if counts[img["id"]] > 1:
            yield Skip(sample_id, name, "duplicate_id", f"image id listed {counts[img['id']]} times")
        elif not (image_dir / name).is_file():
            yield Skip(sample_id, name, "missing_image", f"{image_dir / name} does not exist")
        elif not (captions := clean_captions(by_image.get(img["id"], []))):
            yield Skip(sample_id, name, "missing_caption", "no non-empty caption for this image id")
        else:
            declared = (img["width"], img["height"]) if isinstance(img.get("width"), int) and isinstance(img.get("height"), int) else None
            yield Entry(sample_id, image_dir, name, captions, declared_size=declared)
    for image_id in sorted(set(by_image) - set(counts), key=str):
        yield Skip(str(image_id), "", "unmatched_caption", f"{len(by_image[image_id])} captions for an image id not in images")


def _locate(source: Path, source2: Path | None) -> tuple[Path, Path]:
    if source.is_file():
        captions_file = source
        root = source.parent.parent if source.parent.name == "annotations" else source.parent
    elif source.is_dir():
        found = sorted(source.glob("annotations/captions_*.json")) or sorted(source.glob("captions_*.json"))
        if not found:
            raise LayoutError(f"no COCO captions file in {source}; {_EXPECTED}")
        if len(found) > 1:
            names = ", ".join(str(p) for p in found)
            raise LayoutError(f"several COCO captions files in {source} ({names}); pass the one to use as --source")
        captions_file, root = found[0], source
    else:
        raise LayoutError(f"{source} does not exist; {_EXPECTED}")
    split = captions_file.stem.removeprefix("captions_")
    image_dir = source2 if source2 is not None else root / split
    if not image_dir.is_dir():
        raise LayoutError(f"image folder {image_dir} does not exist; {_EXPECTED}")
    if next(image_dir.iterdir(), None) is None:
        raise LayoutError(f"image folder {image_dir} is empty; {_EXPECTED}")
    return captions_file, image_dir


def _load(captions_file: Path) -> tuple[list[dict], list[dict]]:
    try:
        data = json.loads(captions_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{captions_file} is not a readable JSON file: {exc}") from exc
    images, annotations = (data.get("images"), data.get("annotations")) if isinstance(data, dict) else (None, None)
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise LayoutError(f"{captions_file} has no 'images' and 'annotations' lists; {_EXPECTED}")
    bad = next((i for i in images if not (isinstance(i, dict) and {"id", "file_name"} <= i.keys() and type(i["id"]) is int)), None)
    if bad is not None:
        raise LayoutError(f"{captions_file}: an 'images' entry lacks an integer id or a file_name: {bad!r:.200}")
    bad = next((a for a in annotations if not (isinstance(a, dict) and {"image_id", "caption"} <= a.keys())), None)
    if bad is not None:
        raise LayoutError(f"{captions_file}: an 'annotations' entry lacks image_id or caption: {bad!r:.200}")
    return images, annotations
