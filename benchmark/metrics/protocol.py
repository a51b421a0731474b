"""A scored run's evaluation protocol: one record of everything that decides what its scores mean.

Two labs' FIDs compare only if they were measured alike: the same reference build, the same
images' count and sizes, the same resizer and feature extractors (down to their weights'
sha256), the same crop protocol for the patch scores, the same bootstrap and subset seeds.
``results.json`` holds the record and a short hash of it, every table's provenance names the
hash, and ``python -m benchmark protocol RUN_DIR --check OTHER`` says which fields differ.
The run's own sampling seed is not part of it: it decides the images, not how they are scored.
"""

from __future__ import annotations

import hashlib
import json
from typing import Optional

from benchmark.metrics import kid
from benchmark.metrics.fid_infinity import DRAWS, FIT, MIN_IMAGES, POINTS

VERSION = 1


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def protocol_record(results: dict, rows: list[dict], networks: dict[str, dict], patch_protocol,
                    bootstrap: Optional[dict], metric_origins: dict[str, str], metrics_profile: str,
                    presets: Optional[dict] = None) -> dict:
    """The protocol of a run scored on ``rows`` (its finished images) with ``networks`` (the conventions of
    the feature extractors loaded, weights and their sha256 included) and, where ``--protocols`` asked for
    them, the published presets' definitions resolved on this run (``presets.<name>``: a run scored without
    them keeps the record, and hash, it had before presets existed)."""
    dataset = results.get("dataset") or {}
    return {**({"presets": presets} if presets else {}),
        "version": VERSION,
        "references": ({"data_set": dataset["name"], "manifest_sha256": dataset["manifest_hash"]}
                       if dataset.get("name") else None),
        "images": len(rows),
        "sizes_sha256": _digest(sorted(list(row["size"]) for row in rows)),
        "items_sha256": _digest([row.get("item") for row in rows]),
        "metrics_profile": metrics_profile,
        "extractors": networks,
        "metrics": metric_origins,
        "patch_protocol": patch_protocol.label,
        "patch_crops": patch_protocol.as_dict(),
        "kid_subsets": {"subsets": kid.SUBSETS, "subset_size": kid.SUBSET_SIZE, "seed": kid.SEED},
        "fid_infinity": {"min_images": MIN_IMAGES, "points": POINTS, "draws": DRAWS, "fit": FIT},
        "bootstrap": bootstrap,
    }


def protocol_hash(record: dict) -> str:
    return _digest(record)[:12]


def differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted names of the fields where two protocol records differ."""
    names = []
    for key in sorted(set(a) | set(b), key=str):
        left, right, name = a.get(key), b.get(key), f"{prefix}{key}"
        if isinstance(left, dict) and isinstance(right, dict):
            names += differences(left, right, f"{name}.")
        elif left != right:
            names.append(name)
    return names
