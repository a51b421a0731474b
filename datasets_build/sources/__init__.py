"""Readers of the raw releases, one module per layout.

A reader walks its layout in a fixed, sorted order (so ``--limit`` and every later
step are deterministic) and yields, per sample, either an :class:`Entry` (where the
image bytes are, and the captions) or a :class:`Skip` (why the sample cannot be
used). Readers never decode images: the build reads headers and pixels later, only
for what it needs, so a 100,000-image source is streamed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Union

from ..errors import LayoutError


@dataclass(frozen=True)
class Entry:
    """One usable-looking sample: its image is ``root/file`` (or a byte range of it)."""

    id: str
    root: Path
    file: str  # relative to root; this is the manifest's source path
    captions: tuple[str, ...]
    member: str | None = None  # name inside a tar shard, when the file is one
    offset: int = 0  # byte range of the image inside ``file`` (tar members)
    length: int = -1  # -1: the whole file
    declared_size: tuple[int, int] | None = None  # (W, H) stated by the release's metadata


@dataclass(frozen=True)
class Skip:
    """A sample that is left out, with the reason counted in build_info.json."""

    id: str
    path: str
    reason: str
    detail: str


Sample = Union[Entry, Skip]


def open_image(entry: Entry) -> BinaryIO:
    """A readable binary stream of the entry's image bytes."""
    path = entry.root / entry.file
    if entry.member is None:
        return open(path, "rb")
    with open(path, "rb") as shard:
        shard.seek(entry.offset)
        return io.BytesIO(shard.read(entry.length))


def clean_captions(texts: Iterable[str]) -> tuple[str, ...]:
    """Captions stripped of surrounding white space; empty ones dropped."""
    return tuple(t.strip() for t in texts if t and t.strip())


def read_captions(sample_id: str, path: str, raw: bytes | None, per_line: bool) -> tuple[str, ...] | Skip:
    """Captions from a caption file's bytes (one per line, or the whole text as one),
    or the Skip for a file that is missing, not UTF-8 or blank."""
    if raw is None:
        return Skip(sample_id, path, "missing_caption", "no caption file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Skip(sample_id, path, "missing_caption", "caption file is not UTF-8")
    captions = clean_captions(text.splitlines() if per_line else [text])
    if not captions:
        return Skip(sample_id, path, "missing_caption", "caption file is empty")
    return captions


def require_samples(samples: Iterator[Sample], layout_hint: str) -> Iterator[Sample]:
    """Pass samples through; a source that yields none is a layout error."""
    seen = False
    for sample in samples:
        seen = True
        yield sample
    if not seen:
        raise LayoutError(f"no samples found: {layout_hint}")
