"""StableSR's time-aware encoder: structure features of the clean LR latent at every UNet level.

A half UNet (``EncoderUNetModelWT``) fed the low-resolution latent and the current timestep
(the original one of the 1000-step schedule, not the respaced index). Built from diffusers'
blocks: attention down blocks at the attended levels (LDM's legacy attention: 4 heads,
GroupNorm, no cross-attention), plain down blocks elsewhere, a mid block with attention.
The features are the input of each level's downsampler and the mid block's output, each
through its own ResNet block to ``out_channels``: one per level, full tile size first, as
:class:`baselines.stablesr.spade.SpadeModulation` reads them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_2d_blocks import AttnDownBlock2D, DownBlock2D, UNetMidBlock2D


class TimeAwareEncoder(nn.Module):
    """``forward(latent, t)`` -> one feature map per level (``out_channels`` each)."""

    def __init__(self, in_channels: int = 4, model_channels: int = 256, out_channels: int = 256,
                 channel_mult: tuple = (1, 1, 2, 2), layers_per_block: int = 2,
                 attention_levels: tuple = (0, 1, 2), heads: int = 4, groups: int = 32, eps: float = 1e-5):
        super().__init__()
        temb = 4 * model_channels
        self.time_proj = Timesteps(model_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(model_channels, temb)
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        self.down_blocks = nn.ModuleList()
        channels, widths = model_channels, []
        for level, mult in enumerate(channel_mult):
            out, last = mult * model_channels, level == len(channel_mult) - 1
            common = dict(in_channels=channels, out_channels=out, temb_channels=temb, num_layers=layers_per_block,
                          resnet_eps=eps, resnet_groups=groups, downsample_padding=1)
            if level in attention_levels:
                block = AttnDownBlock2D(**common, attention_head_dim=out // heads,
                                        downsample_type=None if last else "conv")
            else:
                block = DownBlock2D(**common, add_downsample=not last)
            self.down_blocks.append(block)
            channels = out
            if not last:
                widths.append(out)
        self.mid_block = UNetMidBlock2D(channels, temb, resnet_eps=eps, resnet_groups=groups,
                                        attention_head_dim=channels // heads)
        widths.append(channels)
        self.feature_blocks = nn.ModuleList(
            ResnetBlock2D(in_channels=width, out_channels=out_channels, temb_channels=temb, groups=groups, eps=eps)
            for width in widths)

    def forward(self, latent: torch.Tensor, t: torch.Tensor) -> list[torch.Tensor]:
        t = torch.as_tensor(t, device=latent.device).reshape(-1).expand(latent.shape[0])
        emb = self.time_embedding(self.time_proj(t).to(latent.dtype))
        h, features = self.conv_in(latent), []
        for block in self.down_blocks:
            h, states = block(h, emb)
            if block.downsamplers is not None:
                features.append(states[-2])  # the downsampler's input
        features.append(self.mid_block(h, emb))
        return [transform(f, emb) for transform, f in zip(self.feature_blocks, features)]
