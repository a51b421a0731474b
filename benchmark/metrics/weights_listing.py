"""What ``python -m benchmark weights`` lists: the weights the methods need, then those scoring needs.

A user preparing an offline machine (or a GPU node without internet) needs to know, before
a long run fails, which files to copy where: the models of the methods (SD 2.1-base, the
x4 upscaler, an ARAD LoRA) and the metric networks (Inception, AlexNet for LPIPS, CLIP).
The two are listed apart because they fail apart: a method without its models cannot run,
while a run without the metric networks still makes its images (``--no-score``). Each row
says where the file is looked for, whether it is there, its sha256 (so two users can check
they hold the same weights) and where to get it today; then each chosen method says whether
it can run, which is what the exit status reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import pandas as pd

from baselines.models import (PATH_VARIABLES, REPO_VARIABLES, STABLESR_FILES, WeightPaths, locate_piece,
                              repo_candidates)
from baselines.profiles import get_profile
from baselines.registry import get_method, methods
from benchmark.metrics import uses_random_weights, weight_files
from benchmark.metrics.weights import sha256_file

PIECE_NAMES = {"sd21": "stage I (SD 2.1-base)", "upscaler": "stage II (SD x4 upscaler)", "lora": "ARAD"}
STABLESR_USES = {"stablesr": "stage II with --backbone stablesr (the paper's; paper's default when both files are found)",
                 "stablesr_vae": "stage II with --backbone stablesr: the CFW decoder"}
#: Where to get each metric network's file today (nothing here downloads it).
METRIC_SOURCES = {
    "inception": "clean-fid fetches it on its first use where there is internet (into /tmp); or copy the file there",
    "lpips-alexnet": "torchvision fetches it on first use (torch.hub's checkpoints/); or copy the file there",
    "lpips-linear": "ships inside the lpips package (pip install lpips)",
    "clip": "open_clip fetches it on first use into the Hugging Face cache (open_clip.create_model_and_transforms)",
}


def piece_source(piece: str) -> str:
    """Where to get a model piece today, in words."""
    if piece in REPO_VARIABLES:
        repos = repo_candidates(piece)
        return (f"the Hugging Face cache under {' or '.join(repos)} (the stabilityai repos were withdrawn in "
                f"November 2025: `hf download {repos[-1]}` where there is internet), or a diffusers folder "
                f"via --{piece} / ${PATH_VARIABLES[piece]}; another repo id: ${REPO_VARIABLES[piece]}")
    if piece == "lora":
        return ("train with python -m baselines.train_arad, or any SD 2.1 LoRA diffusers' load_lora_weights "
                "takes (diffusers' training scripts, peft, kohya)")
    return "StableSR's release (IceClear/StableSR), given by path"


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
    source: str = ""
    found_as: str = ""  # the repo id and variant a model was found under


def model_rows(profile: str, paths: WeightPaths, hash_files: bool) -> list[Row]:
    """One row per weight file of each model folder (one row for a folder not found)."""
    rows, published = [], get_profile(profile).published
    for key in PATH_VARIABLES:
        needed = published and key not in STABLESR_FILES  # optional: the x4 upscaler stands in
        piece = locate_piece(key, paths)
        if not piece.weight_files:
            rows.append(Row(piece.title, model_uses(key), piece.problem or piece.where, False, needed, None,
                            piece_source(key)))
        found = ", ".join(filter(None, (piece.repo or (piece.variant and "folder given"), piece.variant)))
        for path in piece.weight_files:
            rows.append(Row(f"{piece.title}: {path.relative_to(piece.folder)}", model_uses(key),
                            str(path), piece.present, needed,
                            sha256_file(path) if hash_files else None, piece_source(key), found))
    return rows


def metric_rows(profile: str, hash_files: bool) -> list[Row]:
    return [Row(f.name, f.used_by, "; ".join(f.looked_in) if not f.present else f.path,
                f.present, f.needed, f.sha256, METRIC_SOURCES.get(f.key, ""))
            for f in weight_files(profile, hash_files=hash_files)]


def method_status(profile: str, paths: WeightPaths, names: Iterable[str] = ()) -> list[tuple[str, bool, str]]:
    """(method, whether it can run on ``profile``, why) for each method named (default: every registered one).

    On ``paper`` a method needs its ``Method.needs``; stage II runs on StableSR instead of the x4
    upscaler where both StableSR files are given (the paper profile's default, as a run chooses it)."""
    from baselines.pipeline import backbone_needs, stage2_backbone

    chosen = [get_method(name) for name in names] or list(methods().values())
    if not get_profile(profile).published:
        return [(m.name, True, "can run (random weights)") for m in chosen]
    status = []
    for method in chosen:
        needs = method.needs
        if "upscaler" in needs:
            needs = backbone_needs(needs, stage2_backbone(None, profile, paths))
        missing = [piece.title for piece in (locate_piece(key, paths) for key in needs) if not piece.present]
        status.append((method.name, not missing,
                       f"cannot run: missing {', '.join(missing)}" if missing else "can run"))
    return status


def _table(rows: list[Row], needed_label: str) -> str:
    return pd.DataFrame([{"file": r.file, "used by": r.used_by, needed_label: "yes" if r.needed else "no",
                          "present": "yes" if r.present else "**no**" if r.needed else "no",
                          "sha256": r.sha256 or "–", "found as": r.found_as or "–",
                          "where (found, or looked in)": r.looked_in,
                          "how to get it": r.source} for r in rows]).to_markdown(index=False)


def listing(profile: str, paths: WeightPaths, hash_files: bool = True,
            method_names: Iterable[str] = ()) -> tuple[str, bool]:
    """The markdown listing of ``profile``'s weights (the methods', then scoring's), and whether every
    chosen method (default: all registered) can run; missing scoring weights are said, not counted."""
    models, metrics = model_rows(profile, paths, hash_files), metric_rows(profile, hash_files)
    status = method_status(profile, paths, tuple(method_names))
    runnable = [name for name, ok, _ in status if ok]
    missing_models = [r for r in models if r.needed and not r.present]
    missing_metrics = [r for r in metrics if r.needed and not r.present]
    if uses_random_weights(profile):
        head = (f"Profile `{profile}` uses fixed-seed random weights for its models and metric "
                "networks: no weight file is needed (only files shipped inside installed packages).")
    else:
        head = (f"Profile `{profile}`: {len(runnable)} of {len(status)} chosen method(s) can run; "
                f"{len(missing_models)} model weight file(s) missing, {len(missing_metrics)} scoring weight "
                "file(s) missing. Nothing is downloaded: copy what is missing to one of the places listed "
                "(or pass a folder).")
    scoring = ("Every scoring weight is present." if not missing_metrics else
               f"{len(missing_metrics)} scoring weight file(s) missing: runs still make their images with "
               "--no-score and can be scored later (`python -m benchmark score`); the exit status does not count these.")
    lines = [head, "", "## Models: what the methods need", "", _table(models, "needed"), "",
             "## Methods on this profile", "",
             pd.DataFrame([{"method": name, "status": text} for name, _, text in status]).to_markdown(index=False),
             "", "## Scoring: the metric networks", "", scoring, "", _table(metrics, "needed to score"), ""]
    return "\n".join(lines), len(runnable) == len(status)
