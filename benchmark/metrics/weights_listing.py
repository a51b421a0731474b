"""What ``python -m benchmark weights`` lists: the weights the methods need, then those scoring needs.

A user preparing an offline machine (or a GPU node without internet) needs to know, before
a long run fails, which files to copy where: the models of the methods on the chosen base model
(its weights, SD 2.1's by default or SDXL's with ``--model sdxl``; the x4 upscaler; an ARAD LoRA
where the model needs one) and the metric networks (Inception, AlexNet for LPIPS, CLIP).
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

from baselines.base_models import DEFAULT_MODEL, get_base_model
from baselines.paper_weights import (BASE, PATH_VARIABLES, REPO_VARIABLES, WeightPaths, locate_piece, model_variable,
                                     paper_needs, repo_candidates)
from baselines.profiles import get_profile
from baselines.registry import get_method, methods
from benchmark.metrics import uses_random_weights, weight_files
from benchmark.metrics.weights import sha256_file

PIECE_NAMES = {BASE: "stage I", "upscaler": "stage II (SD x4 upscaler)", "lora": "ARAD"}
STABLESR_USES = {"stablesr": "stage II with --backbone stablesr (the paper's; paper's default when both files are found)",
                 "stablesr_vae": "stage II with --backbone stablesr: the CFW decoder"}
#: Where to get each metric network's file today (nothing here downloads it).
METRIC_SOURCES = {
    "inception": "clean-fid fetches it on its first use where there is internet (into /tmp); or copy the file there",
    "lpips-alexnet": "torchvision fetches it on first use (torch.hub's checkpoints/); or copy the file there",
    "lpips-linear": "ships inside the lpips package (pip install lpips)",
    "clip": "open_clip fetches it on first use into the Hugging Face cache (open_clip.create_model_and_transforms)",
    "hpsv2": "`hf download xswu/HPSv2 HPS_v2.1_compressed.pt` where there is internet, or the file via $ASD_HPSV2",
    "pickscore": "`hf download yuvalkirstain/PickScore_v1` where there is internet, or the folder via $ASD_PICKSCORE",
    "image_reward": "`hf download THUDM/ImageReward ImageReward.pt med_config.json` and `hf download bert-base-uncased` "
                    "where there is internet (or the package's own ~/.cache/ImageReward), or the folder via "
                    "$ASD_IMAGEREWARD",
    **dict.fromkeys(("musiq", "maniqa"), "pyiqa fetches it on first use into its cache (`hf download "
                    "chaofengc/IQA-PyTorch-Weights FILE` where there is internet), or the folder via $ASD_IQA"),
    "clipiqa": "pyiqa (or openai-clip) fetches OpenAI's RN50.pt on first use into its cache, or the folder via $ASD_IQA",
}


def piece_source(piece: str, model: str = DEFAULT_MODEL) -> str:
    """Where to get a model piece today, in words (stage I's: base ``model``'s)."""
    if piece == BASE:
        repos, folder, repo = repo_candidates(piece, model), model_variable(model), model_variable(model, "_REPO")
        cache = (f"the Hugging Face cache under {' or '.join(repos)} (`hf download {repos[-1]}` where there is "
                 "internet), or " if repos else "")
        return (f"{cache}a diffusers folder via --model-weights / ${folder}; another repo id: ${repo}; "
                f"another VAE folder: --vae / ${model_variable(model, '_VAE')}")
    if piece in REPO_VARIABLES:
        repos = repo_candidates(piece)
        return (f"the Hugging Face cache under {' or '.join(repos)} (the stabilityai repos were withdrawn in "
                f"November 2025: `hf download {repos[-1]}` where there is internet), or a diffusers folder "
                f"via --{piece} / ${PATH_VARIABLES[piece]}; another repo id: ${REPO_VARIABLES[piece]}")
    if piece == "lora":
        return ("train with python -m baselines.train_arad, or any SD 2.1 LoRA diffusers' load_lora_weights "
                "takes (diffusers' training scripts, peft, kohya)")
    return "StableSR's release (IceClear/StableSR), given by path"


def model_uses(piece: str, model: str = DEFAULT_MODEL) -> str:
    """What a weight piece is for on base ``model``: the registered methods running on it that need it there
    (StableSR's files: the backbone)."""
    if piece in STABLESR_USES:
        return STABLESR_USES[piece]
    users = [method.name for method in methods().values()
             if model in method.model_names and piece in paper_needs(method.needs, model)]
    what = f"{PIECE_NAMES[piece]} ({get_base_model(model).title})" if piece == BASE else PIECE_NAMES[piece]
    return f"{what}: {', '.join(users) or f'no registered method needs it on {model}'}"


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


def model_rows(profile: str, paths: WeightPaths, hash_files: bool, model: str = DEFAULT_MODEL) -> list[Row]:
    """One row per weight file of each model folder, stage I's on base ``model`` (one row for a folder not
    found). StableSR's files are optional (the x4 upscaler stands in), and so is a LoRA where ``model`` takes none."""
    rows, published = [], get_profile(profile).published
    needed_pieces = paper_needs((BASE, "lora", "upscaler"), model)
    for key in (BASE, *PATH_VARIABLES):
        needed = published and key in needed_pieces
        piece, uses, source = locate_piece(key, paths, model), model_uses(key, model), piece_source(key, model)
        if not piece.weight_files:
            rows.append(Row(piece.title, uses, piece.problem or piece.where, False, needed, None, source))
        found = ", ".join(filter(None, (piece.repo or (piece.variant and "folder given"), piece.variant)))
        for path in piece.weight_files:
            name = path.relative_to(piece.folder) if path.is_relative_to(piece.folder) else path
            rows.append(Row(f"{piece.title}: {name}", uses, str(path), piece.present, needed,
                            sha256_file(path) if hash_files else None, source, found))
    return rows


def metric_rows(profile: str, hash_files: bool) -> list[Row]:
    return [Row(f.name, f.used_by, "; ".join(f.looked_in) if not f.present else f.path,
                f.present, f.needed, f.sha256, METRIC_SOURCES.get(f.key, ""))
            for f in weight_files(profile, hash_files=hash_files)]


def method_status(profile: str, paths: WeightPaths, names: Iterable[str] = (),
                  model: str = DEFAULT_MODEL) -> list[tuple[str, bool, str]]:
    """(method, whether it can run on ``profile`` and base ``model``, why) for each method named (default: every
    registered one that runs on ``model``).

    On ``paper`` a method needs its ``Method.needs`` as they come to on ``model`` (no LoRA on SDXL); stage II
    runs on StableSR instead of the x4 upscaler where both StableSR files are given (the paper profile's
    default, as a run chooses it)."""
    from baselines.pipeline import backbone_needs, stage2_backbone

    chosen = [get_method(name) for name in names] or [m for m in methods().values() if model in m.model_names]
    status = []
    for method in chosen:
        if model not in method.model_names:
            status.append((method.name, False, f"does not run on {model} (runs on {', '.join(method.model_names)})"))
            continue
        if not get_profile(profile).published:
            status.append((method.name, True, "can run (random weights)"))
            continue
        needs = paper_needs(method.needs, model)
        if "upscaler" in needs:
            needs = backbone_needs(needs, stage2_backbone(None, profile, paths))
        missing = [piece.title for piece in (locate_piece(key, paths, model) for key in needs) if not piece.present]
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
            method_names: Iterable[str] = (), model: str = DEFAULT_MODEL) -> tuple[str, bool]:
    """The markdown listing of ``profile``'s weights on base ``model`` (the methods', then scoring's), and
    whether every chosen method (default: all registered on ``model``) can run; missing scoring weights are
    said, not counted."""
    models, metrics = model_rows(profile, paths, hash_files, model), metric_rows(profile, hash_files)
    status = method_status(profile, paths, tuple(method_names), model)
    runnable = [name for name, ok, _ in status if ok]
    missing_models = [r for r in models if r.needed and not r.present]
    missing_metrics = [r for r in metrics if r.needed and not r.present]
    if uses_random_weights(profile):
        head = (f"Profile `{profile}` uses fixed-seed random weights for its models and metric "
                "networks: no weight file is needed (only files shipped inside installed packages).")
    else:
        head = (f"Profile `{profile}`, model `{model}`: {len(runnable)} of {len(status)} chosen method(s) can run; "
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
