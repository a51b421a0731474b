"""SPADE modulation of the SD UNet's ResNet blocks by structure features.

StableSR adds, to every ResNet block of the UNet (down, mid and up), one SPADE layer on the
residual branch, after the block's last convolution and before the skip connection is added:
``h <- GroupNorm(h) * (1 + gamma(s)) + beta(s)``, with ``gamma`` and ``beta`` 3x3 convolutions
of ``ReLU(conv3x3(s))`` (128 hidden channels) and ``s`` the time-aware encoder's feature at the
block's resolution. The SD weights stay diffusers' own modules, untouched: the layers are
attached with forward hooks on each block's ``conv2``, and read the features that
:meth:`SpadeModulation.structure` makes current for one UNet call.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn as nn
from diffusers import UNet2DConditionModel
from diffusers.models.resnet import ResnetBlock2D

SPADE_HIDDEN = 128  # StableSR's hidden width (fixed in its code)


class SPADE(nn.Module):
    """``GroupNorm(h) * (1 + gamma) + beta``, gamma and beta predicted from a feature map of ``h``'s size."""

    def __init__(self, channels: int, feature_channels: int, hidden: int = SPADE_HIDDEN, groups: int = 32,
                 eps: float = 1e-5):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.shared = nn.Sequential(nn.Conv2d(feature_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, h: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        hidden = self.shared(feature)
        return self.norm(h) * (1 + self.gamma(hidden)) + self.beta(hidden)


def resnet_levels(unet: UNet2DConditionModel) -> list[tuple[str, ResnetBlock2D, int]]:
    """Every ResNet block of the UNet as (path, block, level), down, mid, up, in forward order.

    The level is the resolution index (0 = full tile size) whose structure feature the block
    reads: down block i and up block ``levels - 1 - i`` work at level i, the mid block at the last."""
    last = len(unet.down_blocks) - 1
    blocks = [(f"down_blocks.{i}.resnets.{j}", r, i)
              for i, block in enumerate(unet.down_blocks) for j, r in enumerate(block.resnets)]
    blocks += [(f"mid_block.resnets.{j}", r, last) for j, r in enumerate(unet.mid_block.resnets)]
    blocks += [(f"up_blocks.{i}.resnets.{j}", r, last - i)
               for i, block in enumerate(unet.up_blocks) for j, r in enumerate(block.resnets)]
    return blocks


class SpadeModulation(nn.Module):
    """The SPADE layers of one UNet, one per ResNet block in :func:`resnet_levels` order, hooked in.

    ``layers[k]`` modulates the k-th block of :func:`resnet_levels`; outside :meth:`structure`
    the hooks refuse to run, so the UNet is never called without its features by mistake.
    """

    def __init__(self, unet: UNet2DConditionModel, feature_channels: int, hidden: int = SPADE_HIDDEN):
        super().__init__()
        blocks = resnet_levels(unet)
        self.paths = [path for path, _, _ in blocks]
        self.levels = [level for _, _, level in blocks]
        self.layers = nn.ModuleList(
            SPADE(block.conv2.out_channels, feature_channels, hidden, block.norm2.num_groups, block.norm2.eps)
            for _, block, _ in blocks)
        self._features: Optional[list[torch.Tensor]] = None
        self._hooks = [block.conv2.register_forward_hook(self._hook(k)) for k, (_, block, _) in enumerate(blocks)]

    def _hook(self, k: int):
        def modulate(module, inputs, output):
            if self._features is None:
                raise RuntimeError("the StableSR UNet needs structure features: call it inside "
                                   "SpadeModulation.structure(features)")
            return self.layers[k](output, self._features[self.levels[k]])

        return modulate

    @contextmanager
    def structure(self, features: list[torch.Tensor]) -> Iterator[None]:
        """Make ``features`` (one per level, from :class:`baselines.stablesr.encoder.TimeAwareEncoder`) current."""
        self._features = features
        try:
            yield
        finally:
            self._features = None
