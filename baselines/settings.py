"""How a run samples, shared by every method: sizes, steps, stage II tiling, seeds.

Every method takes any size from 64 px: a stage works at the next multiple of what its
model needs (8 px for SD's VAE, the SR factor for stage II) and the result is centre-cropped
to the exact size; each sample's record says so (docs/design.md, "Sizes").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import torch

from baselines.fast_path import FastPath, default_tile_batch_size
from baselines.stage1 import DEFAULT_GUIDANCE, UNTILED, multidiffusion_tiling
from baselines.stage2 import COLOUR_FIXES, paper_tiling
from baselines.stablesr.backbone import DEFAULT_CFW_WEIGHT
from baselines.tiling import TilingConfig
from baselines.vae_tiling import VaeTiling
from datasets_build.sizes import ARAD_BUCKETS, Size, nearest

MIN_SIDE = 64
#: Stage II's backbones: the SD x4 upscaler (diffusers) and StableSR (the paper's; baselines/stablesr).
BACKBONES = {"x4": "SD x4 upscaler", "stablesr": "StableSR"}


def check_size(size: tuple[int, int]):
    if min(size) < MIN_SIDE:
        raise ValueError(f"size {size[0]}x{size[1]} is too small: each side must be at least {MIN_SIDE} px")


def working_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The next multiple of ``multiple`` up, per side."""
    return tuple(-(-side // multiple) * multiple for side in size)


def nearest_bucket(size: tuple[int, int], buckets: Optional[Sequence[tuple[int, int]]] = None) -> tuple[int, int]:
    """The bucket whose ratio H/W is nearest (Eq. 1; ties to the first listed): of ``buckets`` (a base model's,
    :attr:`baselines.base_models.BaseModel.buckets`), the ARAD buckets where none are given."""
    sizes = ARAD_BUCKETS if buckets is None else tuple(Size(*bucket) for bucket in buckets)
    bucket = sizes[int(nearest([size[0] / size[1]], sizes)[0])]
    return (bucket.height, bucket.width)


def centre_crop(image: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """``image`` cut to ``size`` around its centre, and the (top, left) of the cut."""
    top, left = (image.shape[-2] - size[0]) // 2, (image.shape[-1] - size[1]) // 2
    return image[..., top:top + size[0], left:left + size[1]], (top, left)


@dataclass(frozen=True)
class Settings:
    """How a method samples. ``sr_strategy`` is the stage-II tiling of a method that leaves it to the run
    (the others fix theirs); ``tiling`` overrides :class:`TilingConfig` fields, in the backbone's latent px;
    ``vae_tiling`` is how every VAE call of both stages is tiled; ``fast_path`` how the networks
    run (unset fields and an unset ``tiling["tile_batch_size"]`` take the device's default)."""

    steps: int
    sr_steps: int
    guidance: float = DEFAULT_GUIDANCE
    colour: str = "adain"
    sr_strategy: str = "implicit"
    tiling: dict = field(default_factory=dict)
    vae_tiling: VaeTiling = field(default_factory=VaeTiling)
    fast_path: FastPath = field(default_factory=FastPath)
    backbone: Optional[str] = None  # stage II: one of BACKBONES; None: StableSR on paper when its files are found, else x4
    cfw_weight: float = DEFAULT_CFW_WEIGHT  # StableSR's CFW w

    def __post_init__(self):
        if self.backbone is not None and self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.steps < 1 or self.sr_steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps} (stage I) and "
                             f"{self.sr_steps} (stage II)")
        if self.colour not in COLOUR_FIXES:
            raise ValueError(f"unknown colour fix {self.colour!r}; choose one of {', '.join(COLOUR_FIXES)}")

    def for_device(self, device: torch.device) -> "Settings":
        """These settings with the device's tile batch size where the run left it unset."""
        if self.tiling.get("tile_batch_size") is not None:
            return self
        return replace(self, tiling={**self.tiling, "tile_batch_size": default_tile_batch_size(device)})

    def sr_tiling(self, stage2: str, latent_factor: int) -> TilingConfig:
        """Stage II's tiling: a method's strategy (``any``: this run's ``sr_strategy``) at the paper's
        pixel sizes, then the overrides."""
        strategy = self.sr_strategy if stage2 == "any" else stage2
        return paper_tiling(strategy, latent_factor, **self.tiling)

    def stage1_tiling(self, stage1: str, view: int) -> TilingConfig:
        """Stage I's tiling, in cells of the grid it samples (latent px; FLUX's tokens): MultiDiffusion's views
        of ``view`` (the base model's native size), or FSTD's shifted partition into tiles of that size (offsets
        up to half a tile, a grid at rest every 4th step: stage II's FSTD defaults, in proportion)."""
        batch = self.tiling.get("tile_batch_size") or 1
        if stage1 == "multidiffusion":
            return multidiffusion_tiling(batch, view)
        if stage1 == "fstd":
            return TilingConfig("partition", tile=view, offset_range=view // 2, reset_every=4, tile_batch_size=batch)
        return UNTILED


@dataclass(frozen=True)
class Seeds:
    """A sample's random streams: stage I noise, stage II noise, tile offsets (apart, so one never shifts another)."""

    noise: int
    sr_noise: int
    offsets: int

    def generator(self, stream: str) -> torch.Generator:
        return torch.Generator().manual_seed(getattr(self, stream))
