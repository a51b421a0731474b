"""Building a data set: scan the source, select, write the items, record everything.

The steps, each resumable (see :mod:`.resume`):

1. read the source's samples in their fixed order (``--limit`` keeps the first N)
   and each image's header (size after EXIF orientation, mode) — pixels are not
   decoded here, so memory holds metadata only;
2. drop what cannot be used, each with a counted reason (corrupt header, missing
   image or caption, duplicate id, too small for ``--max-upscale``);
3. select per size (:mod:`.selection`) and write the items in manifest order:
   decode, crop, resize, save atomically. An image that fails to decode now is
   recorded as bad and the selection is redone without it, so a broken file
   never becomes an item and the final selection does not depend on when the
   build was interrupted;
4. write ``manifest.parquet``, ``metadata.parquet`` and, last, ``build_info.json``
   (its presence marks a finished build).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
from collections import Counter
from importlib import metadata
from itertools import islice
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from . import images, selection
from .errors import DatasetError, DecodeError, StaleBuildError
from .manifest import MANIFEST, SCHEMA, write_manifest
from .resume import BuildState
from .sets import SETS, DataSet
from .sizes import Size, arad_buckets
from .sources import Entry, Skip, open_image, synthetic

BUILD_INFO = "build_info.json"
FORMAT_VERSION = 1
SCAN_COLUMNS = (
    "id", "root", "file", "member", "offset", "length", "bytes", "captions",
    "width", "height", "mode", "orientation", "has_alpha", "size_mismatch",
)


def build(
    name: str,
    out: Path,
    source: Path | None = None,
    source2: Path | None = None,
    *,
    per_ratio: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    buckets: int | None = None,
    max_upscale: float | None = None,
) -> Path:
    """Build data set ``name`` into ``out`` (resuming a partial build there); return ``out``.

    A finished build with the same parameters is left as it is.
    """
    data_set = _data_set(name)
    sizes = _sizes(data_set, buckets)
    out = Path(out).absolute()
    params = _parameters(data_set, sizes, out, source, source2, per_ratio, limit, seed, buckets, max_upscale)
    if (out / BUILD_INFO).exists():
        finished = json.loads((out / BUILD_INFO).read_text())
        if finished.get("parameters") == params:
            return out
        raise StaleBuildError(f"{out} holds a finished build with other parameters; use another --out or delete it")
    if out.exists() and any(p.name != ".work" for p in out.iterdir()) and not (out / ".work").exists():
        raise StaleBuildError(f"{out} is not empty and holds no build; use an empty or new --out")
    state = BuildState(out / ".work", params)
    try:
        _run(data_set, sizes, params, state, out)
    finally:
        state.close(finished=(out / BUILD_INFO).exists())
    return out


def _data_set(name: str) -> DataSet:
    if name not in SETS:
        raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(SETS)}")
    return SETS[name]


def _sizes(data_set: DataSet, buckets: int | None) -> tuple[Size, ...]:
    if buckets is None:
        return data_set.sizes
    if data_set.name != "arad-train":
        raise DatasetError("--buckets applies to arad-train only")
    if buckets not in (3, 5, 9):
        raise DatasetError(f"--buckets must be 3, 5 or 9, not {buckets}")
    return arad_buckets(buckets)


def _parameters(data_set, sizes, out, source, source2, per_ratio, limit, seed, buckets, max_upscale) -> dict:
    """Check the options against the set and return everything that defines the build."""
    if data_set.generated:
        if source is not None or source2 is not None or limit is not None:
            raise DatasetError(f"{data_set.name} is generated: it takes no --source, --source2 or --limit")
        source = out / "raw"
    elif source is None:
        raise DatasetError(f"{data_set.name} needs --source: {data_set.source_help}")
    if per_ratio is not None and not data_set.per_ratio_option:
        raise DatasetError(f"--per-ratio does not apply to {data_set.name}")
    if max_upscale is not None and data_set.max_upscale is not None:
        raise DatasetError(f"{data_set.name} never upscales its references; --max-upscale does not apply")
    for flag, value in (("--per-ratio", per_ratio), ("--limit", limit)):
        if value is not None and value < 1:
            raise DatasetError(f"{flag} must be at least 1, not {value}")
    if max_upscale is not None and max_upscale < 1:
        raise DatasetError(f"--max-upscale must be at least 1, not {max_upscale}")
    return {
        "format_version": FORMAT_VERSION,
        "name": data_set.name,
        "source": str(Path(source).absolute()),
        "source2": str(Path(source2).absolute()) if source2 is not None else None,
        "sizes": [s.name for s in sizes],
        "buckets": buckets,
        "per_ratio": per_ratio if per_ratio is not None else data_set.per_ratio,
        "borrow": data_set.borrow,
        "lr_factor": data_set.lr_factor,
        "max_upscale": max_upscale if max_upscale is not None else data_set.max_upscale,
        "limit": limit,
        "seed": seed,
    }


def _run(data_set: DataSet, sizes: tuple[Size, ...], params: dict, state: BuildState, out: Path) -> None:
    source = Path(params["source"])
    source2 = Path(params["source2"]) if params["source2"] else None
    if data_set.generated:
        synthetic.write_release(source, sizes, params["per_ratio"], params["seed"])
    scanned = state.load_scan()
    if scanned is None:
        scanned = _scan(data_set.reader(source, source2), params["limit"])
        state.save_scan(*scanned)
    scan_rows, scan_skips = scanned
    candidates, skips = _usable(scan_rows, scan_skips, sizes, params["max_upscale"])
    plan = _write_items(candidates, state, out, sizes, params)
    _remove_orphans(out, plan, sizes, params["lr_factor"])
    frame = _manifest_frame(plan, state, sizes, params)
    write_manifest(frame, out)
    info = _build_info(params, scanned, candidates, skips, plan, state, sizes, out)
    _write_json_atomic(out / BUILD_INFO, info)


def _scan(samples, limit: int | None) -> tuple[pd.DataFrame, list[Skip]]:
    """Read every sample's header; keep the metadata (column by column), never the pixels."""
    columns: dict[str, list] = {name: [] for name in SCAN_COLUMNS}
    roots: dict[Path, str] = {}  # one string per source root, not one per sample
    skips = []
    for sample in tqdm(islice(samples, limit), desc="reading headers", unit="sample", total=limit,
                       disable=None):
        if isinstance(sample, Skip):
            skips.append(sample)
            continue
        try:
            with open_image(sample) as fp:
                header = images.read_header(fp)
                nbytes = fp.seek(0, io.SEEK_END)
        except DecodeError as exc:
            skips.append(Skip(sample.id, _where(sample.file, sample.member), exc.reason, exc.detail))
            continue
        except OSError as exc:
            skips.append(Skip(sample.id, _where(sample.file, sample.member), "corrupt", f"unreadable: {exc}"))
            continue
        declared = sample.declared_size
        values = (
            sample.id,
            roots.setdefault(sample.root, str(sample.root)),
            sample.file,
            sample.member or "",  # "" rather than None: pandas 3 turns None into NaN
            sample.offset,
            sample.length,
            nbytes,
            list(sample.captions),
            header.width,
            header.height,
            header.mode,
            header.orientation,
            header.has_alpha,
            declared is not None and declared != (header.raw_width, header.raw_height),
        )
        for name, value in zip(SCAN_COLUMNS, values):
            columns[name].append(value)
    return pd.DataFrame(columns), skips


def _usable(candidates: pd.DataFrame, skips: list[Skip], sizes, max_upscale) -> tuple[pd.DataFrame, list[Skip]]:
    """Drop duplicated ids (every copy: which one is right is unknown) and too-small images."""
    skips = list(skips)
    duplicated = candidates["id"].duplicated(keep=False)
    for row in candidates[duplicated].itertuples():
        skips.append(Skip(row.id, _where(row.file, row.member), "duplicate_id", "the same id is used by another sample"))
    candidates = selection.assign(candidates[~duplicated], sizes)
    if max_upscale is not None:
        small = candidates["native_scale"] > max_upscale + 1e-9
        for row in candidates[small].itertuples():
            skips.append(
                Skip(row.id, _where(row.file, row.member), "too_small",
                     f"{row.height}x{row.width} needs x{row.native_scale:.3f} to reach {sizes[row.size_index]}, limit x{max_upscale:g}")
            )
        candidates = candidates[~small]
    return candidates, skips


def _write_items(candidates: pd.DataFrame, state: BuildState, out: Path, sizes, params: dict) -> pd.DataFrame:
    """Write every planned item; on a decode failure mark it bad and plan again."""
    while True:
        usable = candidates[~candidates["id"].isin(list(state.bad))]
        plan = selection.select(usable, sizes, params["per_ratio"], params["borrow"], params["seed"], params["max_upscale"])
        todo = [row for row in plan.itertuples() if (row.id, sizes[row.size_index].name) not in state.done]
        for row in tqdm(todo, desc="writing items", unit="img", disable=None):
            size = sizes[row.size_index]
            try:
                digest = write_item(row, out, size, params["lr_factor"])
            except DecodeError as exc:
                state.record_bad(row.id, exc.reason, exc.detail)
                break
            state.record_done(row.id, size.name, digest)
        else:
            return plan


def write_item(row, out: Path, size: Size, lr_factor: int | None) -> str:
    """Decode one source image, write its item file(s); return the source's SHA-256."""
    entry = Entry(row.id, Path(row.root), row.file, (), row.member or None, row.offset, row.length)
    with open_image(entry) as fp:
        data = fp.read()
    image = images.decode_rgb(io.BytesIO(data))
    if image.size != (row.width, row.height):
        raise DecodeError("corrupt", f"decoded size {image.size} differs from the header's {(row.width, row.height)}")
    target = images.fit(image, size, tuple(row.crop_box))
    hr_path, lr_path = item_paths(row.id, size, lr_factor)
    if lr_path is not None:
        images.save_png_atomic(images.downscale(target, lr_factor), out / lr_path)
    images.save_png_atomic(target, out / hr_path)
    return hashlib.sha256(data).hexdigest()


def item_paths(sample_id: str, size: Size, lr_factor: int | None) -> tuple[str, str | None]:
    """Relative paths of an item's reference image and low-resolution input."""
    hr = f"images/{size.name}/{sample_id}.png"
    if lr_factor is None:
        return hr, None
    return hr, f"lr/{size.height // lr_factor}x{size.width // lr_factor}/{sample_id}.png"


def _remove_orphans(out: Path, plan: pd.DataFrame, sizes, lr_factor: int | None) -> None:
    """Delete item files of candidates that a later plan no longer uses, and temp files."""
    keep = {p for row in plan.itertuples() for p in item_paths(row.id, sizes[row.size_index], lr_factor)}
    for folder in ("images", "lr"):
        for path in sorted((out / folder).rglob("*")) if (out / folder).is_dir() else []:
            if path.is_file() and path.relative_to(out).as_posix() not in keep:
                path.unlink()
        for path in sorted((out / folder).rglob("*"), reverse=True) if (out / folder).is_dir() else []:
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _manifest_frame(plan: pd.DataFrame, state: BuildState, sizes, params: dict) -> pd.DataFrame:
    rows = []
    for row in plan.itertuples():
        size = sizes[row.size_index]
        captions = list(row.captions)
        pick = selection.caption_index(params["seed"], row.id, len(captions))
        hr, lr = item_paths(row.id, size, params["lr_factor"])
        rows.append(
            {
                "id": row.id,
                "caption": captions[pick],
                "caption_index": pick,
                "target_height": size.height,
                "target_width": size.width,
                "ratio": size.ratio,
                "image": hr,
                "lr_image": lr,
                "source_path": row.file,
                "source_member": row.member or None,
                "source_sha256": state.done[(row.id, size.name)],
                "orig_height": row.height,
                "orig_width": row.width,
                "source_ratio": row.height / row.width,
                "crop_box": list(row.crop_box),
                "scale": row.scale,
                "assignment": row.assignment,
                "source_mode": row.mode,
                "exif_orientation": row.orientation,
            }
        )
    return pd.DataFrame(rows, columns=SCHEMA.names)


def _where(file: str, member: str | None) -> str:
    """A sample's location for reports: the file, or ``shard.tar::member``."""
    return f"{file}::{member}" if member else file


def _build_info(params, scanned, candidates, skips, plan, state, sizes, out: Path) -> dict:
    """Parameters, source fingerprint, versions, and every count with its reasons."""
    scan_rows, scan_skips = scanned
    located = {row.id: _where(row.file, row.member) for row in candidates.itertuples()}
    skips = skips + [Skip(i, located[i], reason, detail) for i, (reason, detail) in sorted(state.bad.items())]
    selected = plan["size_index"].value_counts()
    borrowed = plan[plan["assignment"] == "borrowed"]["size_index"].value_counts()
    per_ratio = params["per_ratio"]
    per_size = {
        size.name: {
            "selected": int(selected.get(k, 0)),
            "borrowed": int(borrowed.get(k, 0)),
            "shortfall": max(0, per_ratio - int(selected.get(k, 0))) if per_ratio is not None else 0,
        }
        for k, size in enumerate(sizes)
    }
    return {
        "name": params["name"],
        "parameters": params,
        "source_fingerprint": _fingerprint(scan_rows, scan_skips),
        "versions": _versions(),
        "manifest_sha256": hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest(),
        "counts": {
            "samples_read": len(scan_rows) + len(scan_skips),
            "selected": len(plan),
            "not_selected": len(candidates) - len(state.bad) - len(plan),
            "skipped": len(skips),
            "skipped_by_reason": dict(sorted(Counter(s.reason for s in skips).items())),
            "per_size": per_size,
            "handled": {
                "converted_to_rgb_from": dict(sorted(Counter(m for m in plan["mode"] if m != "RGB").items())),
                "alpha_composited_on_white": int(plan["has_alpha"].sum()),
                "exif_transposed": int((plan["orientation"] != 1).sum()),
                "upscaled": int((plan["scale"] > 1 + 1e-9).sum()),
                "borrowed_and_cropped": int((plan["assignment"] == "borrowed").sum()),
                "declared_size_mismatch": int(plan["size_mismatch"].sum()),
            },
        },
        "skipped_items": [s.__dict__ for s in sorted(skips, key=lambda s: (s.reason, s.path, s.id))],
    }


def _fingerprint(scan_rows: pd.DataFrame, scan_skips: list[Skip]) -> str:
    """SHA-256 of what the scan saw: every sample's location, byte count, captions,
    header size and mode, and every skip (content hashes of the used files are in
    the manifest)."""
    digest = hashlib.sha256()
    fields = ["id", "file", "member", "offset", "length", "bytes", "width", "height", "mode", "orientation"]
    for row in scan_rows.itertuples():
        record = [getattr(row, f) for f in fields] + [[str(c) for c in row.captions]]
        digest.update(json.dumps(record, default=_plain).encode() + b"\n")
    for skip in scan_skips:
        digest.update(json.dumps(skip.__dict__, sort_keys=True).encode() + b"\n")
    return digest.hexdigest()


def _plain(value):
    """NumPy scalars as Python ones, so a scan read back from Parquet hashes the same."""
    return value.item() if hasattr(value, "item") else str(value)


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for package in ("asd-bench", "pillow", "numpy", "pandas", "pyarrow", "datasets", "tqdm"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None  # e.g. asd-bench run from a checkout without installing
    return versions


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
