"""Stage I on a flow-matching transformer over 2x2-packed latents (FLUX), as ``FluxPipeline`` samples it.

The latent is sampled as a grid of tokens, ``pixel_unshuffle(latent, 2)``: a (1, 4C, H/2, W/2)
tensor whose cell (i, j) holds, in FLUX's packing order (channel, dy, dx), the token FLUX reads
at row-major position i * W/2 + j. The tiling engine cuts that grid like any latent, so a tile is
a set of whole tokens, and each tile's rotary ids are the coordinates of its cells: their place in
the whole image (``global_positions``, FSTD on FLUX: a tile sees where it is) or their place in
the tile (MultiDiffusion's views, each an image of its own). Untiled with global positions, this
is ``FluxPipeline``'s loop: the same noise (drawn unpacked, then packed), the flow-matching Euler
scheduler with the sigmas ``linspace(1, 1/steps, steps)`` shifted by ``mu`` from the token count
(``calculate_shift``, when the scheduler's config shifts dynamically: dev; schnell's shift is
fixed), the timestep / 1000, the embedded guidance where the transformer has a guidance embedding
(dev; none on schnell: both are guidance-distilled, so there is no unconditional branch), text ids
all zero (``tests/test_flux.py`` holds the equality).

The shift is computed from the tokens one network call sees: the whole image untiled, a tile's
(the native 64x64 tokens) when tiled, since each call is then a native-size image. The Euler
step is affine in the velocity with image-wide coefficients, so averaging overlapping views'
updates (MultiDiffusion) equals updating with their averaged velocity, as for DDIM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.flux.pipeline_flux import calculate_shift
from diffusers.utils.torch_utils import randn_tensor

from baselines.base_models import Conditioning
from baselines.tiled_sampling import sample
from baselines.tiling import SHIFTING, Denoiser, TiledDenoiser, TilingConfig, plan_step

PACK = 2  # FLUX packs 2x2 latent px into one token


def pack(latent: torch.Tensor) -> torch.Tensor:
    """A VAE latent (B, C, H, W) as its token grid (B, 4C, H/2, W/2), FLUX's packing order per cell."""
    return F.pixel_unshuffle(latent, PACK)


def unpack(grid: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(grid, PACK)


def cell_coordinates(height: int, width: int, device=None) -> torch.Tensor:
    """(1, 2, H, W): each cell's row and column, the rotary ids FLUX gives the token there."""
    rows, cols = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device),
                                indexing="ij")
    return torch.stack([rows, cols])[None].float()


def image_ids(coordinates: torch.Tensor) -> torch.Tensor:
    """FLUX's ``img_ids`` (tokens, 3) of one tile's (2, h, w) coordinates: (0, row, column) per token."""
    rows, cols = coordinates.flatten(1)
    return torch.stack([torch.zeros_like(rows), rows, cols], dim=-1)


def transformer_velocity(transformer, tiles: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
                         text_ids: torch.Tensor, pooled: torch.Tensor, guidance: Optional[float],
                         coordinates: torch.Tensor) -> torch.Tensor:
    """One FLUX call on token-grid ``tiles`` (n, 4C, h, w) that share the cell ``coordinates`` (2, h, w): their
    velocity in fp32, as FluxPipeline calls the transformer (timestep / 1000, the embedded guidance if any)."""
    count, channels, height, width = tiles.shape
    dtype = transformer.dtype
    tokens = tiles.to(dtype).flatten(2).transpose(1, 2)
    embedded = None if guidance is None else torch.full([count], guidance, device=tiles.device)
    out = transformer(hidden_states=tokens, timestep=t.expand(count).to(dtype) / 1000, guidance=embedded,
                      encoder_hidden_states=text.to(dtype).expand(count, *text.shape[1:]),
                      pooled_projections=pooled.expand(count, -1), txt_ids=text_ids.to(tiles.device, dtype),
                      img_ids=image_ids(coordinates).to(tiles.device, dtype)).sample
    return out.transpose(1, 2).reshape(count, channels, height, width).float()


def velocity(transformer, positive: Conditioning, guidance: Optional[float]) -> Denoiser:
    """A tile denoiser: FLUX's velocity of each token grid tile; ``positions`` (the engine's tile ``cond``) are
    the tiles' coordinates, None for each tile's own. Tiles with ids of their own take one call each (the
    transformer takes one set of ids per batch)."""
    text, pooled = positive.hidden.to(transformer.dtype), positive.added["pooled_projections"]  # once, not per call
    text_ids = torch.zeros(text.shape[1], 3, device=text.device, dtype=transformer.dtype)

    def call(tiles: torch.Tensor, t: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
        return transformer_velocity(transformer, tiles, t, text, text_ids, pooled, guidance, coordinates)

    def denoise(tiles: torch.Tensor, t: torch.Tensor, positions: Optional[torch.Tensor]) -> torch.Tensor:
        if positions is None:
            return call(tiles, t, cell_coordinates(*tiles.shape[2:], tiles.device)[0])
        return torch.cat([call(tiles[k:k + 1], t, positions[k]) for k in range(tiles.shape[0])])

    return denoise


@dataclass(frozen=True)
class FlowMatching:
    """FLUX's stage I (see the module's docstring); a :class:`baselines.stage1.StageOneSampling`."""

    name: str = "flow-matching Euler"
    patch: int = PACK

    def scheduler(self, config: dict, steps: int, tokens: int, device) -> tuple[FlowMatchEulerDiscreteScheduler, dict]:
        """The scheduler with FluxPipeline's sigmas for ``steps``, shifted for ``tokens``; and the shift in words."""
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)
        settings = scheduler.config
        mu = calculate_shift(tokens, settings.get("base_image_seq_len", 256), settings.get("max_image_seq_len", 4096),
                             settings.get("base_shift", 0.5), settings.get("max_shift", 1.15))
        scheduler.set_timesteps(steps, device=device, sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        shift = ({"dynamic": True, "mu": round(float(mu), 6), "tokens": tokens} if settings.use_dynamic_shifting
                 else {"dynamic": False, "shift": settings.shift})
        return scheduler, shift

    def denoise(self, models, negative, positive, latent_hw, *, steps, guidance, tiling: TilingConfig, generator,
                global_positions, offsets):
        transformer = models.unet
        device = transformer.device
        shape = (1, transformer.config.in_channels // PACK ** 2, *latent_hw)
        grid = pack(randn_tensor(shape, generator=generator, device=device, dtype=torch.float32))
        one_call = plan_step(tuple(grid.shape[2:]), tiling).tile_hw
        scheduler, shift = self.scheduler(models.scheduler_config, steps, one_call[0] * one_call[1], device)
        embedded = guidance if transformer.config.guidance_embeds else None
        tiled = TiledDenoiser(velocity(transformer, positive, embedded), tiling, offsets)
        positions = cell_coordinates(*grid.shape[2:], device) if global_positions else None
        grid = sample(tiled, scheduler, grid, cond=positions)
        return unpack(grid), tiled, {
            "sampler": self.name, "shift": shift,
            "guidance": f"embedded {guidance:g}" if embedded is not None else "none (no guidance embedding)",
            "positions": "global" if global_positions else "per tile",
            **({"offsets": [list(o) for o in tiled.offsets]} if tiling.strategy in SHIFTING else {})}

    def rows_per_tile(self, guidance: float) -> int:
        return 1


FLOW_MATCHING = FlowMatching()
