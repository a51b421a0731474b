"""Scores of a finished model run (SPEC section 4), computed outside the timed samples.

``run`` scores its images once they are all saved, and ``python -m benchmark score``
re-scores a finished run from its directory alone, so scores never slow the timing and a
metric fix needs no new images. Text-to-image methods get FID and KID against the data
set's reference images (pooled, and per size where a size has two images or more), IS and
CLIP score against the captions; ``fstd`` gets PSNR / SSIM (Y), LPIPS, FID and KID against
the HR images; both get patch FID / KID on native-resolution crops (``fid_patch``,
``kid_patch``, the protocol of :mod:`benchmark.metrics.patches`); methods with a stage II
get the seam score of their outputs on the stage II tile grid. A metric that cannot be
computed is None, with the reason in ``skipped``. Metric networks follow
:func:`metrics_profile`: real files on ``paper`` (missing ones are all
named at once), seeded random networks on ``tiny`` and ``paper-arch`` (random weights:
not image quality). Samples that ran out of memory have no image: they are skipped, and
``scores["oom_samples_skipped"]`` says how many.

Under ``accelerate launch`` (:mod:`benchmark.runs.shard`) every process computes the
Inception features and CLIP scores of its share of the images (positions ≡ rank mod
world), they are gathered in image order, and rank 0 computes the figures and writes
``results.json``: the same figures as one process computes.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from baselines.methods import get_method
from baselines.models import asd_cache_dir
from benchmark import metrics
from benchmark.metrics.weights import require_weights
from benchmark.runs.records import read_json, write_json
from benchmark.runs.shard import Shard, current
from benchmark.metrics.seams import seam_score
from datasets_build import iter_items
from datasets_build.manifest import MANIFEST

RANDOM_NOTE = "random weights: not image quality"
METRICS = ("fid", "kid", "fid_patch", "kid_patch", "inception_score", "clip_score", "psnr_y", "ssim_y", "lpips",
           "seam_score")


class ScoringError(ValueError):
    """A directory that cannot be scored; the message says why."""


def metrics_profile(profile: str) -> str:
    """The metric networks' profile: real weights for ``paper``, seeded random ones (``tiny``) otherwise."""
    return "paper" if profile == "paper" else "tiny"


def check_weights(profile: str):
    """Fail before any image is made when ``profile`` needs real metric weights that are missing."""
    profile = metrics_profile(profile)
    if not metrics.uses_random_weights(profile):
        require_weights(profile)


def score_run(out: Path, device: Optional[torch.device] = None,
              patch_protocol: str = metrics.patches.DEFAULT_PROTOCOL, shard: Optional[Shard] = None) -> dict:
    """Score the finished run in ``out`` and rewrite its results.json (atomically); returns the results.

    ``patch_protocol`` is how ``fid_patch`` / ``kid_patch`` cut crops: ``grid`` or ``random:K[:SEED]``.
    """
    out = Path(out)
    if not (out / "results.json").is_file():
        raise ScoringError(f"{out} holds no finished run (no results.json); run it with `python -m benchmark run`")
    results = read_json(out / "results.json")
    if "per_image" not in results or results.get("profile") == "oracle":
        raise ScoringError(f"{out} is not a model run; oracle runs carry their own figures")
    shard = shard or current(device)
    scored = score(out, results, device, metrics.PatchProtocol.parse(patch_protocol), shard)
    if shard.main:
        results.update(scored)
        write_json(out / "results.json", results)
    return shard.share(results if shard.main else None)


def score(out: Path, results: dict, device: Optional[torch.device] = None,
          patch_protocol: metrics.PatchProtocol = metrics.PatchProtocol(), shard: Shard = Shard()) -> dict:
    """The ``scores``, ``metric_conventions`` and ``metrics_profile`` of a run, and its per-image figures
    (on rank 0; the other processes of a sharded run compute their share of the features, then get {})."""
    profile = metrics_profile(results["profile"])
    check_weights(profile)
    random_weights = metrics.uses_random_weights(profile)
    all_rows = results["per_image"]
    rows = [row for row in all_rows if row.get("status", "ok") == "ok"]  # out-of-memory samples have no image
    oom_skipped = len(all_rows) - len(rows)
    if not rows:
        reason = f"no finished image: all {oom_skipped} samples ran out of memory"
        return {"scores": {**dict.fromkeys(METRICS), "kid_std": None, "kid_patch_std": None, "fid_per_ratio": {},
                           "kid_per_ratio": {}, "patch_protocol": patch_protocol.label,
                           "skipped": dict.fromkeys(METRICS, reason), "oom_samples_skipped": oom_skipped},
                "metric_conventions": {}, "metrics_profile": profile, "per_image": all_rows}
    images = [out / row["image"] for row in rows]
    records = [read_json(out / "samples" / f"{row['index']:05d}.json") for row in rows]
    super_resolution = get_method(results["method"]).base is None
    values: dict = {**dict.fromkeys(METRICS), "kid_std": None, "kid_patch_std": None}
    skipped: dict[str, str] = {}
    conventions: dict[str, dict] = {}

    def convention(metric, library, mode, model, pretrained, nets_random=random_weights, **extra):
        conventions[metric] = {"library": library, "mode": mode, "model": model, "pretrained": pretrained,
                               "random_weights": nets_random, **extra,
                               **({"note": RANDOM_NOTE} if nets_random else {})}

    inception = metrics.load_inception(profile, device=device)
    generated = _inception_outputs(images, inception, shard)
    clip = None if super_resolution else metrics.load_clip(profile, device=device)
    clip_values = None if super_resolution else _clip_scores(images, [r["prompt"] for r in records], clip, shard)
    if not shard.main:
        return {}
    inception_conventions = dict(model=inception.conventions["network"], pretrained=inception.conventions["weights"])

    references = _references(results)
    per_ratio: dict[str, dict[str, float]] = {"fid": {}, "kid": {}}
    reference_metrics = ("fid", "kid", "fid_per_ratio", "kid_per_ratio", "fid_patch", "kid_patch")
    if isinstance(references, str):
        skipped.update(dict.fromkeys(reference_metrics, references))
    elif len(images) < 2:
        skipped.update(dict.fromkeys(reference_metrics, f"needs at least 2 images, the run has {len(images)}"
                                     + (f" ({oom_skipped} more ran out of memory)" if oom_skipped else "")))
    else:
        name, items = references
        folder = Path(results["dataset"]["folder"])
        stats = _stats(name, items, inception, folder)
        fid, kid = metrics.fid_score(generated, stats), metrics.kid_score(generated, stats)
        values.update(fid=fid["value"], kid=kid["value"], kid_std=kid["std"])
        per_ratio, too_few = _per_ratio(rows, generated, name, items, inception, folder)
        if too_few:
            skipped["fid_per_ratio"] = skipped["kid_per_ratio"] = \
                "fewer than 2 generated or 2 reference images at " + ", ".join(too_few)
        convention("fid", "clean-fid", "clean", **inception_conventions, reference=name,
                   n_reference=fid["n_reference"], distance=fid["conventions"]["distance"])
        convention("kid", "benchmark.metrics.kid (torchmetrics' subsets)", "clean", **inception_conventions,
                   reference=name, n_reference=kid["n_reference"], **_kid_conventions(kid))
        _patch_scores(rows, images, name, items, inception, folder, patch_protocol, values, skipped,
                      lambda metric, **extra: convention(metric, "benchmark.metrics.patches", "native-resolution crops",
                                                         **inception_conventions, reference=name, **extra))

    inception_score = metrics.inception_score(generated)
    values["inception_score"] = inception_score["value"]
    convention("inception_score", "benchmark.metrics (Inception-v3 logits)", "clean-fid resize",
               **inception_conventions, splits=inception_score["conventions"]["splits"])

    if super_resolution:
        skipped["clip_score"] = "fstd is super-resolution: its images follow the LR input, not the caption"
        _fidelity(out, rows, images, profile, device, values, convention)
    else:
        values["clip_score"] = float(clip_values.mean())
        convention("clip_score", "open_clip", clip.conventions["score"], clip.conventions["model"],
                   clip.conventions["pretrained"])
        for metric in ("psnr_y", "ssim_y", "lpips"):
            skipped[metric] = "text-to-image: no ground-truth image per sample"

    if results.get("sr_tiling"):
        values["seam_score"] = float(np.mean([_seam(image, record) for image, record in zip(images, records)]))
        convention("seam_score", "benchmark.metrics.seams", "stage II non-overlap tile grid, image px", None, None,
                   nets_random=False, tile_px=records[0]["stage2"]["tile_plan"]["tile_px"])
    else:
        skipped["seam_score"] = f"{results['method']} has no stage II tiles"

    return {"scores": {**values, "fid_per_ratio": per_ratio["fid"], "kid_per_ratio": per_ratio["kid"],
                       "patch_protocol": patch_protocol.label, "skipped": skipped, "oom_samples_skipped": oom_skipped},
            "metric_conventions": conventions, "metrics_profile": profile, "per_image": all_rows}


def _inception_outputs(images: list[Path], inception, shard: Shard):
    """One Inception pass over ``images``: each process its share, gathered in image order."""
    if not shard.sharded:
        return metrics.inception_outputs(images, inception)
    mine = shard.mine(range(len(images)))
    part = metrics.inception_outputs([images[p] for p in mine], inception) if mine else None
    features = shard.gather_rows(len(images), None if part is None else part.features)
    logits = shard.gather_rows(len(images), None if part is None else part.logits)
    return metrics.InceptionOutputs(features, logits, shard.share(None if part is None else part.conventions))


def _clip_scores(images: list[Path], prompts: list[str], clip, shard: Shard):
    """CLIP score of each image with its prompt: each process its share, gathered in image order."""
    mine = shard.mine(range(len(images)))
    part = metrics.clip_scores([images[p] for p in mine], [prompts[p] for p in mine], clip) if mine else None
    return shard.gather_rows(len(images), part)


def _references(results: dict):
    """(set name, items) of the run's reference images, or why there are none."""
    dataset = results.get("dataset")
    if not dataset:
        replaced = (results.get("inputs") or {}).get("replaced")
        return f"no reference images ({replaced or 'no data set'})"
    folder = Path(dataset["folder"])
    if not (folder / MANIFEST).is_file():
        return f"the data set folder {folder} is gone"
    if metrics.manifest_hash([], folder / MANIFEST) != dataset["manifest_hash"]:
        return f"the data set in {folder} was rebuilt since the run (manifest hash differs)"
    return dataset["name"], list(iter_items(folder))


def _stats(key: str, items, inception, folder: Path, protocol: Optional[metrics.PatchProtocol] = None):
    """Reference statistics and features (of crops under ``protocol``), cached under asd_cache_dir() by
    manifest hash, extractor and protocol."""
    return metrics.reference_stats([item.image for item in items], key, asd_cache_dir() / "fid-stats",
                                   inception, manifest=folder / MANIFEST, protocol=protocol)


def _kid_conventions(kid: dict) -> dict:
    return {k: kid["conventions"][k] for k in ("kernel", "subsets", "subset_size", "subset_size_requested",
                                                "subset_seed", "subset_draw")}


def _patch_scores(rows, images, name, items, inception, folder, protocol, values, skipped, convention):
    """fid_patch / kid_patch on the crops ``protocol`` cuts from generated and reference images at
    native resolution; not applicable (recorded) where either side has fewer than two crops."""
    generated_crops = metrics.crop_summary([tuple(row["size"]) for row in rows], protocol)
    reference_crops = metrics.crop_summary([(item.height, item.width) for item in items], protocol)
    if generated_crops["crops"] < 2 or reference_crops["crops"] < 2:
        skipped["fid_patch"] = skipped["kid_patch"] = (
            f"not applicable: images smaller than the {protocol.crop}-px crop give no crop, and {protocol.label} "
            f"gives {generated_crops['crops']} generated and {reference_crops['crops']} reference crops (2 each "
            f"needed; generated sizes {', '.join(generated_crops['resolution'])})")
        return
    stats = _stats(f"{name}-patches", items, inception, folder, protocol)
    generated = metrics.patch_outputs(images, inception, protocol)
    fid, kid = metrics.fid_score(generated, stats), metrics.kid_score(generated, stats)
    values.update(fid_patch=fid["value"], kid_patch=kid["value"], kid_patch_std=kid["std"])
    recorded = dict(crops=protocol.as_dict(), generated_crops=generated_crops, reference_crops=reference_crops)
    convention("fid_patch", n_reference=fid["n_reference"], distance=fid["conventions"]["distance"], **recorded)
    convention("kid_patch", n_reference=kid["n_reference"], **_kid_conventions(kid), **recorded)


def _per_ratio(rows, generated, name, items, inception, folder):
    """FID and KID per output size with at least two generated and two reference images; the sizes left out."""
    by_size = defaultdict(list)
    for position, row in enumerate(rows):
        by_size[tuple(row["size"])].append(position)
    figures, too_few = {"fid": {}, "kid": {}}, []
    for (height, width), positions in sorted(by_size.items()):
        label = f"{height}x{width}"
        refs = [item for item in items if (item.height, item.width) == (height, width)]
        if len(positions) < 2 or len(refs) < 2:
            too_few.append(f"{label} ({len(positions)} generated, {len(refs)} reference)")
            continue
        subset = metrics.InceptionOutputs(generated.features[positions], generated.logits[positions],
                                          generated.conventions)
        stats = _stats(f"{name}-{label}", refs, inception, folder)
        figures["fid"][label] = metrics.fid_score(subset, stats)["value"]
        figures["kid"][label] = metrics.kid_score(subset, stats)["value"]
    return figures, too_few


def _fidelity(out, rows, images, profile, device, values, convention):
    """fstd: PSNR / SSIM (Y) and LPIPS of each output against its HR image, per image and mean."""
    lpips = metrics.load_lpips(profile, device=device)
    high = [out / "samples" / f"{row['index']:05d}.hr.png" for row in rows]
    report = metrics.fidelity(high, images, lpips)
    for row, psnr, ssim, distance in zip(rows, *(report["per_image"][k] for k in ("psnr", "ssim", "lpips"))):
        row.update(psnr_y=psnr, ssim_y=ssim, lpips=distance)
    values.update(psnr_y=report["values"]["psnr"], ssim_y=report["values"]["ssim"], lpips=report["values"]["lpips"])
    ssim = report["conventions"]["ssim"]
    for metric in ("psnr_y", "ssim_y"):
        convention(metric, "scikit-image", report["conventions"]["psnr_ssim_channel"], None, None, nets_random=False,
                   data_range=report["conventions"]["data_range"], **({"ssim": ssim} if metric == "ssim_y" else {}))
    convention("lpips", "lpips", lpips.conventions["input"], lpips.conventions["network"],
               lpips.conventions["weights"])


def _seam(image: Path, record: dict) -> float:
    """Seam score of one output on its stage II tile grid (image px)."""
    pixels = torch.from_numpy(metrics.to_rgb_array(image).astype(np.float64)).permute(2, 0, 1)
    output = record["output"]
    return seam_score(pixels, record["stage2"]["tile_plan"]["tile_px"], tuple(output["working_size"]),
                      tuple(output["crop_top_left"]))
