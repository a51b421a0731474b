"""Metrics of the suite (docs/design.md, "Metrics"), each result a dict that carries its conventions.

FID, KID and IS share one Inception-v3 pass (`inception_outputs`); patch FID / KID read
Inception features of native-resolution crops (`patches`); CLIP score uses OpenCLIP;
PSNR/SSIM (Y channel) and LPIPS measure stage-II fidelity. Every loader takes a profile:
`tiny` runs the same architectures with seeded random weights, any other profile needs
the real weight files listed by `weight_files` and never downloads them.
"""
from .clip_score import ClipModel, clip_score, clip_scores, load_clip
from .fid import ReferenceStats, fid_score, frechet_distance, gaussian_stats, manifest_hash, reference_stats
from .fidelity import Lpips, fidelity, load_lpips, psnr_y, ssim_y, y_channel
from .images import to_rgb_array
from .inception import InceptionOutputs, InceptionV3, clean_resize, inception_outputs, load_inception
from .inception_score import inception_score, inception_score_from_logits
from .kid import kernel_inception_distance, kid_score
from .patches import PatchProtocol, crop_summary, patch_outputs
from .weights import MissingWeightsError, WeightFile, require_weights, uses_random_weights, weight_files

__all__ = [
    "ClipModel", "InceptionOutputs", "InceptionV3", "Lpips", "MissingWeightsError", "PatchProtocol", "ReferenceStats",
    "WeightFile", "clean_resize", "clip_score", "clip_scores", "crop_summary", "fid_score", "fidelity",
    "frechet_distance", "gaussian_stats", "inception_outputs", "inception_score", "inception_score_from_logits",
    "kernel_inception_distance", "kid_score", "load_clip", "load_inception", "load_lpips", "manifest_hash",
    "patch_outputs", "psnr_y", "reference_stats", "require_weights", "ssim_y", "to_rgb_array",
    "uses_random_weights", "weight_files", "y_channel",
]
