"""Inception-v3 pool3 features and logits in clean-fid's "clean" convention.

FID and IS both read one Inception pass: images are resized with PIL bicubic to 299x299
in float32 (clean-fid "clean" mode, no quantisation), scaled to [-1, 1] by (x - 128) / 128,
and the network returns the 2048-d pool3 features and the class logits. Real weights are
the TF 2015-12-05 graph as clean-fid's TorchScript file; the `tiny` metric networks (of the
`tiny` and `paper-arch` profiles) use a small stand-in with its interface and seeded random
weights, so numbers from it check the plumbing, never the paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from cleanfid.resize import build_resizer
from torch import nn

from .images import ImageLike, to_rgb_array
from .weights import (INCEPTION_FILE, default_device, inception_candidates, locate, seeded, sha256_file,
                      uses_random_weights)

RESIZE_CONVENTION = "clean-fid 'clean': PIL bicubic to 299x299 per channel in float32, no quantisation"
#: How each of clean-fid's modes brings an image to 299 px before the TF graph (``cleanfid.resize.build_resizer``
#: and ``cleanfid.features.build_feature_extractor``): the presets of :mod:`benchmark.metrics.presets` compare them.
RESIZE_CONVENTIONS = {
    "clean": RESIZE_CONVENTION,
    "legacy_tensorflow": "clean-fid 'legacy_tensorflow': torch bilinear to 299x299 (align_corners False, no "
                         "antialias) on the 8-bit values, as the TorchScript graph resizes inside itself",
    "legacy_pytorch": "clean-fid 'legacy_pytorch': torch bilinear to 299x299 (align_corners False, no antialias) "
                      "outside the network, as cleanfid.resize.build_resizer('legacy_pytorch')",
}
MODES = tuple(RESIZE_CONVENTIONS)


class InceptionV3(nn.Module):
    """Maps Nx3x299x299 float images in [0, 255] to (pool3 features N x 2048, logits N x classes).

    Logits are the output layer without its bias, as StyleGAN2-ADA and torch-fidelity
    compute IS from the TF graph.
    """

    def __init__(self, body: nn.Module, head: nn.Linear, conventions: dict):
        super().__init__()
        self.body = body
        self.head = head
        self.conventions = conventions

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body((x - 128) / 128).reshape(len(x), 2048)
        return features, F.linear(features, self.head.weight)


@dataclass(frozen=True)
class InceptionOutputs:
    """One Inception pass over a set of images, shared by FID and IS."""

    features: np.ndarray
    logits: np.ndarray
    conventions: dict


def load_inception(profile: str, path=None, seed: int = 0, device=None) -> InceptionV3:
    """The profile's Inception-v3: clean-fid's TorchScript file, or the seeded tiny stand-in for `tiny`.

    `path` is the weight file or a folder holding inception-2015-12-05.pt; by default it
    is looked for where clean-fid caches it.
    """
    device = torch.device(device) if device is not None else default_device()
    if uses_random_weights(profile):
        return _random_inception(seed).to(device).eval()
    file = locate("inception", inception_candidates(path), INCEPTION_FILE, "FID, IS (Inception-v3)")
    base = torch.jit.load(str(file), map_location="cpu").eval()
    conventions = {
        "network": "Inception-v3, TF graph inception-2015-12-05 (clean-fid / StyleGAN2-ADA TorchScript)",
        "weights": file.name,
        "weights_sha256": sha256_file(file),
        "features": "pool3, 2048-d",
        "logits": f"{base.output.out_features} classes, output layer without bias",
    }
    return InceptionV3(base.layers, base.output, conventions).to(device).eval()


#: The tiny stand-in's convolution widths: four 3x3 stride-2 layers (299 -> 17 px), then a 1x1 to the 2048 features.
TINY_WIDTHS = (3, 16, 32, 64, 128)


def _random_inception(seed: int) -> InceptionV3:
    """A small stand-in with Inception-v3's interface (299-px input, 2048-d pooled features, 1008 logits) and seeded
    random weights, as the other tiny metric networks are small (CLIP's is a two-layer ViT): its numbers check the
    plumbing, never the paper, and the full network's 6 GFLOPs an image were most of a tiny run's scoring."""
    with seeded(seed):  # every layer made inside: their biases keep PyTorch's default (seeded) init
        layers = []
        for inputs, outputs in zip(TINY_WIDTHS, TINY_WIDTHS[1:]):
            layers += [nn.Conv2d(inputs, outputs, 3, stride=2), nn.ReLU()]
        body = nn.Sequential(*layers, nn.Conv2d(TINY_WIDTHS[-1], 2048, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        for module in body.modules():
            if isinstance(module, nn.Conv2d):  # He-normal: features of order 1 through the ReLUs
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        head = nn.Linear(2048, 1008)
    conventions = {
        "network": f"tiny stand-in: {len(TINY_WIDTHS) - 1} stride-2 3x3 convolutions {TINY_WIDTHS}, 1x1 to 2048, "
                   "ReLU, global average pool",
        "weights": f"random (seed {seed})",
        "init": "He-normal convolutions, PyTorch default linear layer",
        "features": "avgpool, 2048-d",
        "logits": f"{head.out_features} classes, output layer without bias",
    }
    return InceptionV3(body, head, conventions)


def clean_resize(image: ImageLike) -> np.ndarray:
    """299x299x3 float32 in [0, 255], resized as clean-fid's "clean" mode does."""
    return build_resizer("clean")(to_rgb_array(image))


def resizer(mode: str):
    """clean-fid's resize of ``mode`` as a function of an H x W x 3 array: its own ``build_resizer``, except
    for ``legacy_tensorflow``, whose resize clean-fid leaves to the TorchScript graph (``resize_inside``): the
    same torch bilinear resize, done here so that every mode feeds the one network the suite loads."""
    if mode not in RESIZE_CONVENTIONS:
        raise ValueError(f"unknown clean-fid mode {mode!r}; known: {', '.join(MODES)}")
    resize = build_resizer("legacy_pytorch" if mode == "legacy_tensorflow" else mode)
    return lambda image: resize(to_rgb_array(image)).astype(np.float32)


def inception_outputs(images: Iterable[ImageLike], net: InceptionV3, batch_size: int = 32,
                      mode: str = "clean") -> InceptionOutputs:
    """Features and logits of `images` (any sizes), batch by batch, resized as clean-fid's ``mode`` does."""
    resize = clean_resize if mode == "clean" else resizer(mode)
    device = next(net.parameters()).device
    features, logits, batch = [], [], []

    def flush():
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).to(device)
        f, l = net(x)
        features.append(f.double().cpu().numpy())
        logits.append(l.double().cpu().numpy())
        batch.clear()

    for image in images:
        batch.append(resize(image))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not features:
        raise ValueError("no images")
    conventions = {"resize": RESIZE_CONVENTIONS[mode], **net.conventions}
    return InceptionOutputs(np.concatenate(features), np.concatenate(logits), conventions)
