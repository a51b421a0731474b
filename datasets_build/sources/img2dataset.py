"""img2dataset output, in either of its layouts (used for MA-LAION-COCO and ARAD training).

``output_format=files``: shard folders ``00000/`` holding ``{key}.jpg`` (or .png,
.webp), ``{key}.txt`` (the caption) and ``{key}.json`` (download metadata).
``output_format=webdataset``: shard archives ``00000.tar`` holding the same three
members per key. img2dataset also writes ``00000.parquet`` and ``00000_stats.json``
next to each shard; they are not needed. Shards are read in name order and keys in
sorted order within a shard, so the sample order does not depend on the file system.
"""

from __future__ import annotations

import tarfile
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..errors import LayoutError
from . import Entry, Sample, Skip, read_captions, require_samples

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")

_EXPECTED = (
    "expected img2dataset output: shard folders like 00000/ holding {key}.jpg, {key}.txt "
    "and {key}.json (output_format=files), or shard archives like 00000.tar holding the "
    "same members (output_format=webdataset)"
)


def entries(source: Path, source2: Path | None = None) -> Iterator[Sample]:
    """All samples of all shards under ``source``."""
    if source2 is not None:
        raise LayoutError("an img2dataset source takes no --source2")
    if not source.is_dir():
        raise LayoutError(f"{source} is not a folder; {_EXPECTED}")
    shards = sorted(
        (p for p in source.iterdir() if p.name.split(".")[0].isdigit() and (p.is_dir() or p.suffix == ".tar")),
        key=lambda p: p.name,
    )
    if not shards:
        raise LayoutError(f"no shards in {source}; {_EXPECTED}")
    return require_samples(
        (sample for shard in shards for sample in (_folder(source, shard) if shard.is_dir() else _tar(source, shard))),
        f"the shards under {source} are empty; {_EXPECTED}",
    )


def _samples(source: Path, shard_rel: str, members: dict[str, dict[str, list]], read) -> Iterator[Sample]:
    """Samples of one shard from its files grouped by key and extension.

    ``members[key][ext]`` lists what the shard holds under that name (more than one
    when a tar repeats a member); ``read(item)`` returns the bytes of one of them.
    """
    for key in sorted(members):
        files = members[key]
        images = [(ext, item) for ext in IMAGE_EXTENSIONS for item in files.get(ext, [])]
        where = f"{shard_rel}/{key}"
        if not images:
            yield Skip(key, where, "missing_image", f"no image next to {sorted(files)} (failed download?)")
            continue
        if len(images) > 1:
            yield Skip(key, where, "duplicate_id", f"{len(images)} images for one key in {shard_rel}")
            continue
        txt = files.get(".txt", [])
        captions = read_captions(key, where, read(txt[-1]) if txt else None, per_line=False)
        if isinstance(captions, Skip):
            yield captions
            continue
        yield _entry(source, shard_rel, key, images[0], captions)


def _entry(source: Path, shard_rel: str, key: str, image, captions) -> Entry:
    ext, item = image
    if isinstance(item, tarfile.TarInfo):
        return Entry(key, source, shard_rel, captions, member=item.name, offset=item.offset_data, length=item.size)
    return Entry(key, source, f"{shard_rel}/{key}{ext}", captions)


def _folder(source: Path, shard: Path) -> Iterator[Sample]:
    members: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for path in shard.iterdir():
        if path.is_file() and not path.name.startswith("."):
            key, dot, ext = path.name.partition(".")
            members[key][f"{dot}{ext}".lower()].append(path)
    yield from _samples(source, shard.name, members, lambda path: path.read_bytes())


def _tar(source: Path, shard: Path) -> Iterator[Sample]:
    """Samples of a tar shard; members before any damage are still used."""
    members: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    texts: dict[str, bytes] = {}
    try:
        with tarfile.open(shard, "r:") as tar:
            try:
                for info in tar:
                    name = info.name.removeprefix("./")
                    if not info.isfile():
                        continue
                    if name.startswith("/") or ".." in PurePosixPath(name).parts:
                        yield Skip(name, f"{shard.name}::{name}", "unsafe_name", "member path leaves the shard")
                        continue
                    key, dot, ext = name.partition(".")
                    members[key][f"{dot}{ext}".lower()].append(info)
            except tarfile.TarError as exc:
                yield Skip(shard.name, shard.name, "corrupt", f"shard damaged after {len(members)} keys: {exc}")
            for files in members.values():
                for info in files.get(".txt", []):
                    try:
                        texts[info.name] = tar.extractfile(info).read()
                    except (tarfile.TarError, OSError):
                        pass  # reported as a missing caption of that key
    except (tarfile.TarError, OSError) as exc:
        yield Skip(shard.name, shard.name, "corrupt", f"unreadable shard: {type(exc).__name__}: {exc}")
        return
    yield from _samples(source, shard.name, members, lambda info: texts.get(info.name))
