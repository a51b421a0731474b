"""Fidelity of a restored image to its reference: PSNR and SSIM on Y, LPIPS on RGB.

PSNR and SSIM follow the super-resolution convention: the Y channel of ITU-R BT.601
YCbCr (skimage.color.rgb2ycbcr, Y in [16, 235], unrounded floats), data range 255, no
border crop unless asked. SSIM uses Wang et al.'s settings (11x11 Gaussian window,
sigma 1.5, population covariances, K1 0.01, K2 0.03) through scikit-image. LPIPS is
the lpips package's AlexNet variant on RGB in [-1, 1]; its linear layers ship with lpips,
the AlexNet backbone is torchvision's (real) or seeded random (`tiny`).
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import lpips
import numpy as np
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .images import ImageLike, to_rgb_array
from .weights import (ALEXNET_FILE, alexnet_candidates, default_device, locate, seeded, sha256_file,
                      uses_random_weights)

DATA_RANGE = 255.0
SSIM_SETTINGS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "K1": 0.01, "K2": 0.03}


def y_channel(image: ImageLike) -> np.ndarray:
    """BT.601 luma of an RGB image as float64 in [16, 235]."""
    return rgb2ycbcr(to_rgb_array(image))[..., 0]


def _pair(reference: ImageLike, test: ImageLike, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    ref, out = y_channel(reference), y_channel(test)
    if ref.shape != out.shape:
        raise ValueError(f"reference {ref.shape} and test {out.shape} differ in size")
    if crop_border:
        ref, out = ref[crop_border:-crop_border, crop_border:-crop_border], out[crop_border:-crop_border, crop_border:-crop_border]
    return ref, out


def psnr_y(reference: ImageLike, test: ImageLike, crop_border: int = 0) -> float:
    """10 log10(255^2 / MSE) on Y; inf for identical images."""
    ref, out = _pair(reference, test, crop_border)
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(ref, out, data_range=DATA_RANGE))


def ssim_y(reference: ImageLike, test: ImageLike, crop_border: int = 0) -> float:
    """Mean SSIM on Y over the window positions that fit inside the image."""
    ref, out = _pair(reference, test, crop_border)
    return float(structural_similarity(ref, out, data_range=DATA_RANGE, **SSIM_SETTINGS))


class Lpips(torch.nn.Module):
    """lpips.LPIPS(net='alex') on uint8 RGB images, with its weights recorded."""

    def __init__(self, net: lpips.LPIPS, conventions: dict):
        super().__init__()
        self.net = net.eval()
        self.conventions = conventions

    @torch.no_grad()
    def forward(self, reference: ImageLike, test: ImageLike) -> float:
        device = next(self.net.parameters()).device
        ref, out = (torch.tensor(to_rgb_array(im)).permute(2, 0, 1)[None].to(device, torch.float32) / 127.5 - 1
                    for im in (reference, test))
        if ref.shape != out.shape:
            raise ValueError(f"reference {tuple(ref.shape)} and test {tuple(out.shape)} differ in size")
        return float(self.net(ref, out).item())


def load_lpips(profile: str, path=None, seed: int = 0, device=None) -> Lpips:
    """LPIPS-Alex: real torchvision AlexNet from a local checkpoint, or a seeded random one for `tiny`.

    The backbone is always built random (pnet_rand) so lpips never reaches for
    torchvision's download; real weights are then copied in from `path` or the torch hub cache.
    """
    device = torch.device(device) if device is not None else default_device()
    with seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lpips passes torchvision's deprecated `pretrained=`
        net = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    conventions = {"network": "lpips 0.1 AlexNet (linear layers shipped with lpips)", "input": "RGB in [-1, 1]"}
    if uses_random_weights(profile):
        conventions["weights"] = f"backbone random (seed {seed})"
    else:
        file = locate("lpips-alexnet", alexnet_candidates(path), ALEXNET_FILE, "LPIPS backbone")
        _load_alexnet_features(net.net, torch.load(file, map_location="cpu", weights_only=True))
        conventions.update(weights=file.name, weights_sha256=sha256_file(file))
    return Lpips(net, conventions).to(device)


def _load_alexnet_features(backbone: torch.nn.Module, state_dict: dict) -> None:
    """Copy torchvision AlexNet `features.<i>.*` tensors into lpips' slices, which keep the index <i>."""
    mapped = {}
    for name in backbone.state_dict():
        slice_name, index, param = name.split(".")
        mapped[name] = state_dict[f"features.{index}.{param}"]
    backbone.load_state_dict(mapped, strict=True)


def fidelity(
    references: Sequence[ImageLike],
    tests: Sequence[ImageLike],
    lpips_model: Optional[Lpips] = None,
    crop_border: int = 0,
) -> dict:
    """Mean and per-image PSNR-Y, SSIM-Y (and LPIPS when a model is given) of test images against references."""
    if len(references) != len(tests) or not references:
        raise ValueError(f"need matching, non-empty image lists, got {len(references)} and {len(tests)}")
    per_image = {"psnr": [], "ssim": [], **({"lpips": []} if lpips_model is not None else {})}
    for reference, test in zip(references, tests):  # one pair in memory at a time: HR images are large
        reference, test = to_rgb_array(reference), to_rgb_array(test)
        per_image["psnr"].append(psnr_y(reference, test, crop_border))
        per_image["ssim"].append(ssim_y(reference, test, crop_border))
        if lpips_model is not None:
            per_image["lpips"].append(lpips_model(reference, test))
    conventions = {
        "psnr_ssim_channel": "Y of ITU-R BT.601 YCbCr (skimage rgb2ycbcr, [16, 235], float)",
        "data_range": DATA_RANGE,
        "crop_border": crop_border,
        "ssim": {"implementation": "skimage.metrics.structural_similarity", **SSIM_SETTINGS},
    }
    if lpips_model is not None:
        conventions["lpips"] = lpips_model.conventions
    return {
        "metric": "fidelity",
        "values": {name: float(np.mean(values)) for name, values in per_image.items()},
        "per_image": per_image,
        "n": len(references),
        "conventions": conventions,
    }
