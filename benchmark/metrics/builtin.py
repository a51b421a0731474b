"""The built-in metrics of the suite (docs/design.md, "Metrics"), registered in this order.

Text-to-image runs get FID and KID against the data set's reference images (pooled, and
per size where a size has two images or more), IS and CLIP score against the captions;
super-resolution runs get PSNR / SSIM (Y), LPIPS, FID and KID against the HR images; both
get patch FID / KID on native-resolution crops (``fid_patch``, ``kid_patch``, the protocol
of :mod:`benchmark.metrics.patches`); runs with stage II tiles get the seam score of their
outputs on the stage II tile grid. Tolerances are the regression tolerances of
``scores.<name>``: scores come from 8-bit images through random-weight networks on
whatever CPU runs CI, so they get a little room.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from benchmark import metrics
from benchmark.metrics.fid import frechet_resampler
from benchmark.metrics.fid_infinity import fid_infinity
from benchmark.metrics.kid import kid_resampler
from benchmark.metrics.registry import SUPER_RESOLUTION, TEXT_TO_IMAGE, MetricValue, register_metric
from benchmark.metrics.seams import seam_score as _seam_score

if TYPE_CHECKING:
    from benchmark.metrics.context import ScoringContext

BOTH = (TEXT_TO_IMAGE, SUPER_RESOLUTION)
KID_TOLERANCE = {"rel": 0.02, "abs": 1e-3}
NO_GROUND_TRUTH = "text-to-image: no ground-truth image per sample"


def _kid_resampler(features: np.ndarray, stats):
    """KID of chosen generated rows against the fixed reference features, with the score's own subsets."""
    return kid_resampler(features, stats.features)


def kid_conventions(kid: dict) -> dict:
    """The subset conventions of a KID result."""
    return {k: kid["conventions"][k] for k in ("kernel", "subsets", "subset_size", "subset_size_requested",
                                                "subset_seed", "subset_draw")}


def _too_few(context: "ScoringContext", metric: str) -> dict:
    """The skipped reason of ``<metric>_per_ratio`` where some size had too few images."""
    too_few = context.per_ratio()[1]
    return {f"{metric}_per_ratio": "fewer than 2 generated or 2 reference images at " + ", ".join(too_few)} \
        if too_few else {}


@register_metric(applies_to=BOTH, needs_references=True, tolerance={"rel": 0.02}, higher_is_better=False,
                 extras={"fid_per_ratio": {}, "fid_infinity": None}, skipped_extras=("fid_per_ratio", "fid_infinity"),
                 source='Heusel et al., NeurIPS 2017 (FID); features and resize as clean-fid 0.1.35 mode "clean" (Parmar et al., CVPR 2022)')
def fid(context: "ScoringContext") -> MetricValue:
    name, _ = context.require_references()
    stats = context.reference_stats
    result = metrics.fid_score(context.generated, stats)
    unbiased, why = None, {}
    try:
        unbiased = fid_infinity(context.generated.features, stats.mu, stats.sigma)
    except ValueError as error:
        why = {"fid_infinity": str(error)}
    return MetricValue(result["value"],
                       context.convention("clean-fid", "clean", **context.inception_conventions, reference=name,
                                          n_reference=result["n_reference"], n=result["n"],
                                          distance=result["conventions"]["distance"],
                                          **({"fid_infinity": {k: v for k, v in unbiased.items() if k != "value"}}
                                             if unbiased else {})),
                       extra={"fid_per_ratio": context.per_ratio()[0]["fid"],
                              "fid_infinity": unbiased["value"] if unbiased else None},
                       skipped={**_too_few(context, "fid"), **why},
                       resample=frechet_resampler(context.generated.features, stats.mu, stats.sigma))


@register_metric(applies_to=BOTH, needs_references=True, tolerance=KID_TOLERANCE, column="KID↓", digits=4,
                 higher_is_better=False, extras={"kid_std": None, "kid_per_ratio": {}},
                 skipped_extras=("kid_per_ratio",),
                 source="Binkowski et al., ICLR 2018 (KID: unbiased MMD, cubic kernel; subsets as torchmetrics'), on FID's "
                        "features")
def kid(context: "ScoringContext") -> MetricValue:
    name, _ = context.require_references()
    stats = context.reference_stats
    result = metrics.kid_score(context.generated, stats)
    return MetricValue(result["value"],
                       context.convention("benchmark.metrics.kid (torchmetrics' subsets)", "clean",
                                          **context.inception_conventions, reference=name,
                                          n_reference=result["n_reference"], n=len(context.generated.features),
                                          **kid_conventions(result)),
                       extra={"kid_std": result["std"], "kid_per_ratio": context.per_ratio()[0]["kid"]},
                       skipped=_too_few(context, "kid"), resample=_kid_resampler(context.generated.features, stats))


def _patch_convention(context: "ScoringContext", **extra) -> dict:
    name, _ = context.require_references()
    return context.convention("benchmark.metrics.patches", "native-resolution crops", **context.inception_conventions,
                              reference=name, **extra)


@register_metric(applies_to=BOTH, needs_references=True, tolerance={"rel": 0.02}, column="patch FID↓", digits=2,
                 higher_is_better=False,
                 source='ours: FID of 299-px crops at native resolution, grid or seeded random (docs/metrics.md, "Patch FID / KID")')
def fid_patch(context: "ScoringContext") -> MetricValue:
    patches = context.patch_scores()
    result = patches["fid"]
    stats, features, crops = patches["stats"], patches["features"], patches["crops_of"]
    frechet = frechet_resampler(features, stats.mu, stats.sigma)
    return MetricValue(result["value"], _patch_convention(context, n_reference=result["n_reference"],
                                                          distance=result["conventions"]["distance"],
                                                          **patches["recorded"]),
                       resample=lambda positions: frechet(crops(positions)))


@register_metric(applies_to=BOTH, needs_references=True, tolerance=KID_TOLERANCE, column="patch KID↓", digits=4,
                 higher_is_better=False, extras={"kid_patch_std": None},
                 source='ours: KID of the crops of fid_patch (docs/metrics.md, "Patch FID / KID")')
def kid_patch(context: "ScoringContext") -> MetricValue:
    patches = context.patch_scores()
    result = patches["kid"]
    kid_of, crops = _kid_resampler(patches["features"], patches["stats"]), patches["crops_of"]
    return MetricValue(result["value"], _patch_convention(context, n_reference=result["n_reference"],
                                                          **kid_conventions(result), **patches["recorded"]),
                       extra={"kid_patch_std": result["std"]}, resample=lambda positions: kid_of(crops(positions)))


@register_metric(applies_to=BOTH, tolerance={"rel": 0.02}, higher_is_better=True,
                 source='Salimans et al., NeurIPS 2016 (IS, 10 splits); clean-fid 0.1.35 Inception logits')
def inception_score(context: "ScoringContext") -> MetricValue:
    result = metrics.inception_score(context.generated)
    logits, splits = context.generated.logits, result["conventions"]["splits"]
    return MetricValue(result["value"],
                       context.convention("benchmark.metrics (Inception-v3 logits)", "clean-fid resize",
                                          **context.inception_conventions, splits=splits),
                       resample=lambda positions: metrics.inception_score_from_logits(logits[positions], splits)[0])


@register_metric(applies_to=(TEXT_TO_IMAGE,), tolerance={"rel": 0.02, "abs": 0.05},  # floored at 0 by definition
                 higher_is_better=True,
                 inapplicable_reason="super-resolution: its images follow the LR input, not the caption",
                 source="100 x cosine of OpenCLIP image and text embeddings, floored at 0, as torchmetrics' CLIPScore "
                        "(Hessel et al., EMNLP 2021, without its 2.5 weight)")
def clip_score(context: "ScoringContext") -> MetricValue:
    clip = context.clip
    return MetricValue(float(context.clip_values.mean()),
                       context.convention("open_clip", clip.conventions["score"], clip.conventions["model"],
                                          clip.conventions["pretrained"]),
                       per_image=[float(value) for value in context.clip_values])


def _fidelity_convention(context: "ScoringContext", report: dict, **extra) -> dict:
    return context.convention("scikit-image", report["conventions"]["psnr_ssim_channel"], None, None,
                              nets_random=False, data_range=report["conventions"]["data_range"], **extra)


@register_metric(applies_to=(SUPER_RESOLUTION,), tolerance={"abs": 0.05}, higher_is_better=True,
                 inapplicable_reason=NO_GROUND_TRUTH,
                 source='PSNR on Y (BT.601, data range 255), scikit-image')
def psnr_y(context: "ScoringContext") -> MetricValue:
    report = context.fidelity()
    return MetricValue(report["values"]["psnr"], _fidelity_convention(context, report),
                       per_image=report["per_image"]["psnr"])


@register_metric(applies_to=(SUPER_RESOLUTION,), tolerance={"abs": 0.005}, higher_is_better=True,
                 inapplicable_reason=NO_GROUND_TRUTH,
                 source='SSIM on Y (Wang et al., 2004), scikit-image structural_similarity')
def ssim_y(context: "ScoringContext") -> MetricValue:
    report = context.fidelity()
    return MetricValue(report["values"]["ssim"],
                       _fidelity_convention(context, report, ssim=report["conventions"]["ssim"]),
                       per_image=report["per_image"]["ssim"])


@register_metric(applies_to=(SUPER_RESOLUTION,), tolerance={"abs": 0.005}, higher_is_better=False,
                 inapplicable_reason=NO_GROUND_TRUTH,
                 source='Zhang et al., CVPR 2018 (LPIPS, AlexNet), the lpips package')
def lpips(context: "ScoringContext") -> MetricValue:
    report = context.fidelity()
    network = context.lpips
    return MetricValue(report["values"]["lpips"],
                       context.convention("lpips", network.conventions["input"], network.conventions["network"],
                                          network.conventions["weights"]),
                       per_image=report["per_image"]["lpips"])


def _seam(image: Path, record: dict) -> float:
    """Seam score of one output on its stage II tile grid (image px)."""
    pixels = torch.from_numpy(metrics.to_rgb_array(image).astype(np.float64)).permute(2, 0, 1)
    output = record["output"]
    return _seam_score(pixels, record["stage2"]["tile_plan"]["tile_px"], tuple(output["working_size"]),
                       tuple(output["crop_top_left"]))


@register_metric(applies_to=BOTH, tolerance={"rel": 0.02}, higher_is_better=False, needs_stage2_tiles=True,
                 source='ours: squared jumps across stage II\'s tile borders over those elsewhere (docs/metrics.md, '
                        '"Seam score")')
def seam_score(context: "ScoringContext") -> MetricValue:
    records = context.records
    values = [_seam(image, record) for image, record in zip(context.images, records)]
    return MetricValue(float(np.mean(values)), context.convention("benchmark.metrics.seams", "stage II non-overlap tile grid, image px",
                                                 None, None, nets_random=False,
                                                 tile_px=records[0]["stage2"]["tile_plan"]["tile_px"]),
                       per_image=values)


__all__ = ["fid", "kid", "fid_patch", "kid_patch", "inception_score", "clip_score", "psnr_y", "ssim_y", "lpips",
           "seam_score", "kid_conventions"]
