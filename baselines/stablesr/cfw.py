"""StableSR's CFW decoder: SD's VAE decoder with the encoder's features fused in at levels 1 and 2.

Controllable feature wrapping: the VAE that decodes the sampled latent also encodes the
upscaled low-resolution image, and at every decoder level but the first and the last
(1 and 2 of SD's four) adds ``w * C(F_e, F_d)`` to the decoder's features ``F_d`` after the
level's ResNet blocks (before its upsampler), ``F_e`` the encoder's features of the same
level (after its ResNet blocks, before its downsampler). ``C`` is a ResNet block on the
concatenation, ESRGAN's residual-in-residual dense blocks, and another ResNet block. ``w`` is
0.5 in the authors' scripts; ``w = 0`` is the plain decoder.

The VAE is diffusers' ``AutoencoderKL`` with its own keys; features are captured and fused
with forward hooks on the last ResNet block of each level, inside :meth:`CFWAutoencoder.fusing`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn
from diffusers import AutoencoderKL
from diffusers.models.resnet import ResnetBlock2D

GROW_CHANNELS = 32  # ESRGAN's growth channels, fixed in StableSR's fusion layer


class ResidualDenseBlock(nn.Module):
    """ESRGAN's dense block: five 3x3 convolutions, each fed all earlier outputs; residual scaled by 0.2."""

    def __init__(self, channels: int, grow: int = GROW_CHANNELS):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels + k * grow, grow if k < 4 else channels, 3, padding=1)
                                   for k in range(5))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for k, conv in enumerate(self.convs):
            y = conv(torch.cat(outputs, dim=1))
            outputs.append(self.act(y) if k < 4 else y)
        return outputs[-1] * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks in a residual scaled by 0.2 (ESRGAN's residual-in-residual dense block)."""

    def __init__(self, channels: int, grow: int = GROW_CHANNELS):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualDenseBlock(channels, grow) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x) * 0.2 + x


class FusionLayer(nn.Module):
    """``C(F_e, F_d)``: ResNet block (2C -> C), ``rrdb_blocks`` RRDBs, ResNet block (C -> C)."""

    def __init__(self, channels: int, rrdb_blocks: int = 2, groups: int = 32, eps: float = 1e-6,
                 grow: int = GROW_CHANNELS):
        super().__init__()
        self.fuse_in = ResnetBlock2D(in_channels=2 * channels, out_channels=channels, temb_channels=None,
                                     groups=groups, eps=eps)
        self.rrdbs = nn.Sequential(*(RRDB(channels, grow) for _ in range(rrdb_blocks)))
        self.fuse_out = ResnetBlock2D(in_channels=channels, out_channels=channels, temb_channels=None,
                                      groups=groups, eps=eps)

    def forward(self, encoder_feature: torch.Tensor, decoder_feature: torch.Tensor) -> torch.Tensor:
        h = self.fuse_in(torch.cat([encoder_feature, decoder_feature], dim=1), None)
        return self.fuse_out(self.rrdbs(h), None)


def fusion_levels(vae: AutoencoderKL) -> tuple[int, ...]:
    """The levels StableSR fuses: every one but the first and the last (1 and 2 of SD's VAE)."""
    return tuple(range(1, len(vae.config.block_out_channels) - 1))


class CFWAutoencoder(nn.Module):
    """SD's VAE (``vae``, diffusers) and the fusion layers (``fusion["1"]``, ``fusion["2"]``)."""

    def __init__(self, vae: AutoencoderKL, rrdb_blocks: int = 2, grow: int = GROW_CHANNELS):
        super().__init__()
        self.vae = vae
        channels = vae.config.block_out_channels
        self.fusion = nn.ModuleDict({str(level): FusionLayer(channels[level], rrdb_blocks, vae.config.norm_num_groups,
                                                             grow=grow)
                                     for level in fusion_levels(vae)})

    @torch.no_grad()
    def encode_features(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        """The encoder's features of ``image`` at the fusion levels (the posterior is not needed)."""
        features, hooks = {}, []
        blocks = self.vae.encoder.down_blocks
        for level in fusion_levels(self.vae):
            def keep(module, inputs, output, level=level):
                features[level] = output
            hooks.append(blocks[level].resnets[-1].register_forward_hook(keep))
        try:
            h = self.vae.encoder.conv_in(image)
            for block in blocks[:max(fusion_levels(self.vae)) + 1]:  # deeper levels do not feed the fusion
                h = block(h)
        finally:
            for hook in hooks:
                hook.remove()
        return features

    @contextmanager
    def fusing(self, features: dict[int, torch.Tensor], weight: float) -> Iterator[None]:
        """Inside, ``vae.decode`` adds ``weight * C(F_e, F_d)`` at the fusion levels."""
        levels = len(self.vae.config.block_out_channels)
        hooks = []
        for level in fusion_levels(self.vae) if weight else ():  # w = 0: the plain decoder
            def fuse(module, inputs, output, level=level):
                return output + weight * self.fusion[str(level)](features[level].to(output), output)
            hooks.append(self.vae.decoder.up_blocks[levels - 1 - level].resnets[-1].register_forward_hook(fuse))
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, features: dict[int, torch.Tensor], weight: float) -> torch.Tensor:
        """The image of ``latent`` (already divided by the scaling factor), fused with ``features``."""
        with self.fusing(features, weight):
            return self.vae.decode(latent).sample
