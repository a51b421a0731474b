"""Multi-Modal-CelebA-HQ (TediGAN) captions and split, with the CelebA-HQ 1024² originals.

``--source`` is the Multi-Modal-CelebA-HQ folder: ``text/{idx}.txt`` (ten captions,
one per line; the released archive unpacks as ``text/celeba-caption/{idx}.txt``,
accepted too) and the split lists ``test/filenames.pickle`` (AttnGAN convention: a
pickled list of file names without extension, ``'0'``, ``'12'``, …). A plain-text
list, one name per line, is accepted as ``test/filenames.txt`` or ``test.txt``.
``--source2`` is CelebAMask-HQ (or its ``CelebA-HQ-img/`` folder) with the 1024²
originals ``{idx}.jpg``; the 512² ``image/`` folder of Multi-Modal-CelebA-HQ is not
used, since the high-resolution references must be the originals.
"""

from __future__ import annotations

import io
import pickle
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..errors import LayoutError
from . import Entry, Sample, Skip, read_captions, require_samples

_TEXT_DIRS = ("text/celeba-caption", "text", "celeba-caption")
_SPLIT_FILES = ("test/filenames.pickle", "test/filenames.txt", "test.txt")
_EXPECTED = (
    "expected --source = Multi-Modal-CelebA-HQ with text/{idx}.txt and test/filenames.pickle, "
    "and --source2 = CelebAMask-HQ with CelebA-HQ-img/{idx}.jpg"
)


def entries(source: Path, source2: Path | None = None) -> Iterator[Sample]:
    """One sample per name of the official test list, in the list's order."""
    if not source.is_dir():
        raise LayoutError(f"{source} is not a folder; {_EXPECTED}")
    text_dir = next((source / d for d in _TEXT_DIRS if (source / d).is_dir()), None)
    split_file = next((source / f for f in _SPLIT_FILES if (source / f).is_file()), None)
    if text_dir is None or split_file is None:
        missing = "text/" if text_dir is None else "test/filenames.pickle (or test.txt)"
        raise LayoutError(f"{source} has no {missing}; {_EXPECTED}")
    if source2 is None:
        raise LayoutError(f"mm-celeba-hq needs --source2 for the 1024² originals; {_EXPECTED}")
    hr_dir = source2 / "CelebA-HQ-img" if (source2 / "CelebA-HQ-img").is_dir() else source2
    if not hr_dir.is_dir() or next(hr_dir.iterdir(), None) is None:
        raise LayoutError(f"{hr_dir} is not a folder of originals; {_EXPECTED}")
    names = read_split(split_file)
    return require_samples(_samples(names, text_dir, hr_dir), f"{split_file} is empty")


def _samples(names: list[str], text_dir: Path, hr_dir: Path) -> Iterator[Sample]:
    counts = Counter(names)
    for idx in names:
        if counts[idx] > 1:
            yield Skip(idx, idx, "duplicate_id", f"listed {counts[idx]} times in the test list")
            continue
        text = text_dir / f"{idx}.txt"
        captions = read_captions(idx, text.name, text.read_bytes() if text.is_file() else None, per_line=True)
        if isinstance(captions, Skip):
            yield captions
            continue
        image = next((f"{idx}{ext}" for ext in (".jpg", ".png") if (hr_dir / f"{idx}{ext}").is_file()), None)
        if image is None:
            yield Skip(idx, f"{idx}.jpg", "missing_image", f"no {idx}.jpg in {hr_dir}")
            continue
        yield Entry(idx, hr_dir, image, captions)


class _ListsOnly(pickle.Unpickler):
    """Split lists are plain lists of strings: refuse anything that imports code, except
    the codec function Python 3 uses to pickle bytes for Python 2 readers."""

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a split list holds only names")


def read_split(path: Path) -> list[str]:
    """Sample ids (file names without folder and extension) from a pickled or text list."""
    if path.suffix == ".pickle":
        try:  # latin1 reads the Python 2 pickles of the AttnGAN era as well
            raw = _ListsOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
        except Exception as exc:
            raise LayoutError(f"{path} is not a pickled list of file names: {exc}") from exc
        if not isinstance(raw, (list, tuple)) or not all(isinstance(n, (str, bytes, int)) for n in raw):
            raise LayoutError(f"{path} holds {type(raw).__name__}, not a list of file names")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
    else:
        names = path.read_text(encoding="utf-8-sig").split()
    return [_stem(n) for n in names if n.strip()]


def _stem(name: str) -> str:
    leaf = PurePosixPath(name.strip().replace("\\", "/")).name
    stem, dot, ext = leaf.rpartition(".")
    return stem if dot and ext.lower() in ("jpg", "jpeg", "png", "txt") else leaf
