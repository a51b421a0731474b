"""``fstd`` on the oracle profile: tiled sampling of a Gaussian random field, no weights.

There is no low-resolution image here: the method samples the field itself from noise,
so every difference between strategies comes from the tiling alone. ``--size`` is in
image pixels as everywhere else; the latent is an eighth of it per side, as in SD's VAE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler

from baselines.registry import oracle_method
from baselines.tiled_sampling import sample
from baselines.tiling import TiledDenoiser, TilingConfig, tile_count
from benchmark.oracle.field import GaussianField, OracleDenoiser, patch_frechet_distance
from benchmark.runs.records import read_array
from benchmark.runs.runner import derived_seed, finished
from benchmark.metrics.seams import seam_score

LATENT_FACTOR = 8
INTERIOR_MARGIN = 32  # latent px: the widest default offset strip, and the image edges


def oracle_scheduler() -> DDPMScheduler:
    """SD's training schedule (scaled-linear betas, 1000 steps), evenly respaced from t=999."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                         beta_start=0.00085, beta_end=0.012, clip_sample=False,
                         prediction_type="epsilon", timestep_spacing="trailing")


@dataclass
class OracleFSTDJob:
    tiling: TilingConfig
    size: tuple[int, int] = (2048, 2048)
    steps: int = 50
    seed: int = 0
    device: torch.device = torch.device("cpu")
    field: GaussianField = field(default_factory=GaussianField)
    radius: int = 8

    def __post_init__(self):
        for side in self.size:
            if side % LATENT_FACTOR:
                raise ValueError(f"the oracle works on latents of 1/{LATENT_FACTOR} of the image; "
                                 f"size {self.size[0]}x{self.size[1]} must be a multiple of "
                                 f"{LATENT_FACTOR} per side")
        self.scheduler = oracle_scheduler()
        self.scheduler.set_timesteps(self.steps)
        self.denoiser = OracleDenoiser(self.field, self.scheduler.alphas_cumprod, self.radius)

    @property
    def latent_size(self) -> tuple[int, int]:
        return (self.size[0] // LATENT_FACTOR, self.size[1] // LATENT_FACTOR)

    def parameters(self) -> dict:
        return {"method": oracle_method().name, "profile": "oracle", "tiling": self.tiling.as_record(),
                "size": list(self.size), "latent_size": list(self.latent_size),
                "steps": self.steps, "sampler": "DDPM (ancestral, trailing spacing)",
                "seed": self.seed, "data": self.field.as_record(),
                "denoiser": self.denoiser.as_record(), "weights": "none (analytic oracle)",
                "backbone": "oracle (Gaussian random field)"}

    def warm_up(self):
        for t in self.scheduler.timesteps:
            self.denoiser.kernel(int(t))
        self.denoiser(torch.zeros((1, self.field.channels, 8, 8)), self.scheduler.timesteps[0])

    def sample_size(self, index: int) -> tuple[int, int]:
        return tuple(self.size)

    def run_sample(self, index: int):
        noise = torch.Generator().manual_seed(derived_seed(self.seed, index, "noise"))
        offsets = torch.Generator().manual_seed(derived_seed(self.seed, index, "offsets"))
        tiled = TiledDenoiser(self.denoiser, self.tiling, offsets)
        latent = torch.randn((1, self.field.channels) + self.latent_size, generator=noise)
        result = sample(tiled, self.scheduler, latent, generator=noise)
        record = {"denoiser_calls": tiled.calls, "tile_evaluations": tiled.tile_evaluations,
                  "offsets": tiled.offsets,
                  "seam_score": seam_score(result, self.tiling.tile)}
        return {"latent": result}, record

    def summarise(self, records: list[dict], out: Path) -> dict:
        """Figures over the finished samples (None where every sample ran out of memory)."""
        records = [r for r in records if finished(r)]
        tiles = {"tiles_per_step": tile_count(self.latent_size, self.tiling), "seam_score_tile": self.tiling.tile,
                 "distribution_error_interior_margin": INTERIOR_MARGIN,
                 "distribution_error_kind": "Fréchet distance of 6x6 patch Gaussian fits vs the true field"}
        if not records:
            return {**dict.fromkeys(("denoiser_calls_per_sample", "tile_evaluations_per_sample", "seam_score",
                                     "seam_score_std", "distribution_error", "distribution_error_interior")),
                    **tiles}
        latents = torch.cat([read_array(out / "samples" / f"{r['index']:05d}.latent.npy")
                             for r in records])
        seams = [r["seam_score"] for r in records]
        return {
            "denoiser_calls_per_sample": float(np.mean([r["denoiser_calls"] for r in records])),
            "tile_evaluations_per_sample": float(np.mean([r["tile_evaluations"] for r in records])),
            "seam_score": float(np.mean(seams)),
            "seam_score_std": float(np.std(seams)),
            "distribution_error": patch_frechet_distance(latents, self.field),
            "distribution_error_interior": (
                patch_frechet_distance(latents, self.field, margin=INTERIOR_MARGIN)
                if min(self.latent_size) >= 4 * INTERIOR_MARGIN else None),
            **tiles,
        }
