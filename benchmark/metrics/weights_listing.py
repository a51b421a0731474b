"""What ``python -m benchmark weights`` lists: every weight file a profile needs.

A user preparing an offline machine (or a GPU node without internet) needs to know, before
a long run fails, which files to copy where: the models of the methods (SD 2.1-base, the
x4 upscaler, an ARAD LoRA) and the metric networks (Inception, AlexNet for LPIPS, CLIP).
Each row says where the file is looked for, whether it is there and its sha256, so two
users can check they hold the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pandas as pd

from baselines.registry import methods
from baselines.models import PATH_VARIABLES, STABLESR_FILES, WeightPaths, locate_piece
from benchmark.metrics import uses_random_weights, weight_files
from benchmark.metrics.weights import sha256_file

PIECE_NAMES = {"sd21": "stage I (SD 2.1-base)", "upscaler": "stage II (SD x4 upscaler)", "lora": "ARAD"}
STABLESR_USES = {"stablesr": "stage II with --backbone stablesr (the paper's; paper's default when both files are found)",
                 "stablesr_vae": "stage II with --backbone stablesr: the CFW decoder"}


def model_uses(piece: str) -> str:
    """What a weight piece is for: the registered methods that need it (StableSR's files: the backbone)."""
    if piece in STABLESR_USES:
        return STABLESR_USES[piece]
    users = [method.name for method in methods().values() if piece in method.needs]
    return f"{PIECE_NAMES[piece]}: {', '.join(users) or 'no registered method'}"


@dataclass(frozen=True)
class Row:
    file: str
    used_by: str
    looked_in: str
    present: bool
    needed: bool
    sha256: Optional[str]


def model_rows(profile: str, paths: WeightPaths, hash_files: bool) -> list[Row]:
    """One row per weight file of each model folder (one row for a folder not found)."""
    rows = []
    for key in PATH_VARIABLES:
        needed = profile == "paper" and key not in STABLESR_FILES  # optional: the x4 upscaler stands in
        piece = locate_piece(key, paths)
        if not piece.weight_files:
            rows.append(Row(piece.title, model_uses(key), piece.where, False, needed, None))
        for path in piece.weight_files:
            rows.append(Row(f"{piece.title}: {path.relative_to(piece.folder)}", model_uses(key),
                            str(path), piece.present, needed,
                            sha256_file(path) if hash_files else None))
    return rows


def metric_rows(profile: str, hash_files: bool) -> list[Row]:
    return [Row(f.name, f.used_by, "; ".join(f.looked_in) if not f.present else f.path,
                f.present, f.needed, f.sha256)
            for f in weight_files(profile, hash_files=hash_files)]


def listing(profile: str, paths: WeightPaths, hash_files: bool = True) -> tuple[str, bool]:
    """The markdown listing of ``profile``'s weight files, and whether every needed one is there."""
    rows = model_rows(profile, paths, hash_files) + metric_rows(profile, hash_files)
    frame = pd.DataFrame([{"file": r.file, "used by": r.used_by,
                           "needed": "yes" if r.needed else "no",
                           "present": "yes" if r.present else "**no**" if r.needed else "no",
                           "sha256": r.sha256 or "–", "where (found, or looked in)": r.looked_in}
                          for r in rows])
    missing = [r for r in rows if r.needed and not r.present]
    if uses_random_weights(profile):
        head = (f"Profile `{profile}` uses fixed-seed random weights for its models and metric "
                "networks: no weight file is needed (only files shipped inside installed packages).")
    elif missing:
        head = (f"Profile `{profile}`: {len(missing)} needed weight file(s) missing; nothing is "
                "downloaded, so copy them to one of the places listed (or pass a folder).")
    else:
        head = f"Profile `{profile}`: every needed weight file is present."
    return f"{head}\n\n{frame.to_markdown(index=False)}\n", not missing
