"""The manifest (``manifest.parquet``) and the ``load_dataset`` view (``metadata.parquet``).

The manifest is the record of a build: one row per item, sorted by size then id,
with a fixed Arrow schema. It is written with pyarrow directly, without pandas'
schema metadata (which names the pandas version), so two builds of the same source
with the same parameters give byte-identical files. ``metadata.parquet`` holds the
columns Hugging Face's image-folder loader reads (``file_name``, ``lr_file_name``),
so ``datasets.load_dataset(out)`` opens a build.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.parquet"
METADATA = "metadata.parquet"

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("caption", pa.string()),
        ("caption_index", pa.int32()),  # which of the sample's captions (seeded choice)
        ("target_height", pa.int32()),
        ("target_width", pa.int32()),
        ("ratio", pa.float64()),  # target H / W
        ("image", pa.string()),  # relative to the build folder
        ("lr_image", pa.string()),  # null for sets without low-resolution inputs
        ("source_path", pa.string()),  # relative to its source root
        ("source_member", pa.string()),  # member of a tar shard, else null
        ("source_sha256", pa.string()),  # of the source file (or member) bytes
        ("orig_height", pa.int32()),  # after EXIF orientation
        ("orig_width", pa.int32()),
        ("source_ratio", pa.float64()),
        ("crop_box", pa.list_(pa.int32(), 4)),  # left, top, right, bottom in the oriented original
        ("scale", pa.float64()),  # target / crop side; > 1 is an upscale
        ("assignment", pa.string()),  # "nearest" (Eq. 1) or "borrowed" (short size filled by cropping)
        ("source_mode", pa.string()),  # Pillow mode before conversion to RGB
        ("exif_orientation", pa.int8()),
    ]
)


def write_parquet(frame: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    """Write ``frame`` reproducibly (no pandas metadata, fixed schema) and atomically."""
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False).replace_schema_metadata(None)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_manifest(frame: pd.DataFrame, out: Path) -> None:
    """The manifest and, from the same rows, the ``load_dataset`` view."""
    write_parquet(frame[SCHEMA.names], out / MANIFEST, SCHEMA)
    view = pd.DataFrame(
        {
            "id": frame["id"],
            "file_name": frame["image"],
            "lr_file_name": frame["lr_image"],
            "caption": frame["caption"],
            "height": frame["target_height"],
            "width": frame["target_width"],
        }
    )
    if view["lr_file_name"].isna().all():
        view = view.drop(columns="lr_file_name")
    write_parquet(view, out / METADATA)


def read_manifest(root: Path) -> pd.DataFrame:
    """A build's manifest as a DataFrame."""
    return pq.read_table(root / MANIFEST).to_pandas()
