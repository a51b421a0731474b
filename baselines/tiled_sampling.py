"""The sampling loop around the tiling engine: a diffusers scheduler (DDIM, DDPM, flow-matching Euler) drives it.

The loop is the only place that knows about schedulers; the engine only turns a latent into
a stitched noise prediction. ``fill="latent"`` is applied here, after the update, because
it is a statement about the latent, not about the prediction.
"""

from __future__ import annotations

from typing import Optional

import torch
from tqdm.auto import tqdm

from baselines.tiling import TiledDenoiser


def sample(tiled: TiledDenoiser, scheduler, latent: torch.Tensor,
           cond: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None,
           progress: bool = False) -> torch.Tensor:
    """Run ``scheduler`` over its timesteps from ``latent`` with tiled noise predictions.

    ``scheduler.set_timesteps`` must have been called. A scheduler without ``scale_model_input`` (flow
    matching's) takes the latent as it is. ``generator`` seeds the sampler's own
    noise (DDPM's ancestral term); the tile offsets have their own generator inside
    ``tiled``, so changing one never shifts the other.
    """
    for step_index, t in enumerate(tqdm(scheduler.timesteps, disable=not progress, leave=False)):
        model_input = scheduler.scale_model_input(latent, t) if hasattr(scheduler, "scale_model_input") else latent
        prediction = tiled(model_input, t, step_index, cond)
        updated = scheduler.step(prediction, t, latent, generator=generator).prev_sample
        if tiled.config.fill == "latent" and tiled.uncovered is not None:
            updated = torch.where(tiled.uncovered, latent, updated)
        latent = updated
    return latent
