"""Stage I: text to image at one size, with a base model (SD 2.1, SDXL, FLUX) or ARAD (SD 2.1 + LoRA), or
MultiDiffusion, or FSTD's shifted tiles.

How a model is sampled is its entry's :class:`StageOneSampling`: the suite's DDIM loop on a UNet (below,
every model's unless its entry names another) or flow matching on a transformer's tokens
(:mod:`baselines.flow_matching`, FLUX); :func:`generate` reads it, never the model's name, and decodes.

DDIM (eta 0) with classifier-free guidance, as ``StableDiffusionPipeline`` does it: the
negative (empty) prompt first, one UNet call on the doubled batch, then
``uncond + scale * (text - uncond)``. Latents, stitching and scheduler arithmetic stay in
fp32 whatever the model dtype (in fp16 the engine's Gaussian tile weights underflow to 0 at
tile corners); only the networks run in the model dtype. The UNet is called with what the base
model's entry makes of the prompt (:class:`baselines.base_models.Conditioning`: SDXL adds pooled
text and size micro-conditioning), never by testing the model's name. The loop is the tiling engine's: untiled
(``strategy="none"``) it is the plain pipeline; with 64-latent views at stride 8 and
uniform weights (:func:`multidiffusion_tiling`) it is MultiDiffusion.

MultiDiffusion runs on our engine rather than through diffusers'
``StableDiffusionPanoramaPipeline`` (deprecated in diffusers 0.42) because the engine (1)
covers any latent size: its last view is clamped to the far edge, whereas the panorama
pipeline's views stop at ``(size - 64) // 8 * 8 + 64`` and leave the rest at zero when the
latent is not 64 + a multiple of 8; (2) counts UNet calls and tiles like every other
method. Where both cover the latent they agree: MultiDiffusion averages the views' DDIM
updates, DDIM (eta 0) is affine in the noise prediction with image-wide coefficients (the
final step's too, whatever ``set_alpha_to_one``), so averaging updates equals updating with
the averaged prediction; that holds only while DDIM neither clips nor thresholds its x0
estimate (SD 2.1's config: ``clip_sample`` and ``thresholding`` off), so overlapping views
refuse a scheduler that does (tested against the authors' ``panorama.py`` and diffusers'
panorama pipeline on the tiny models).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol

import torch
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor

from baselines.base_models import DEFAULT_GUIDANCE, Conditioning, as_conditioning
from baselines.models import TextToImageModels
from baselines.tiled_sampling import sample
from baselines.tiling import Denoiser, TiledDenoiser, TilingConfig
from baselines.vae_tiling import VaeTiling, decode_latents, vae_factor

UNTILED = TilingConfig("none")


class StageOneSampling(Protocol):
    """How stage I samples a base model's network (``BaseModel.sampling``): the suite's DDIM loop on a UNet
    (:data:`DDIM_SAMPLING`, every model's unless its entry names another), or flow matching on a transformer
    (:mod:`baselines.flow_matching`, FLUX). ``patch``: VAE-latent px per cell of the grid it samples and tiles
    (FLUX packs 2x2 latent px into a token)."""

    name: str
    patch: int

    def denoise(self, models: TextToImageModels, negative, positive, latent_hw: tuple[int, int], *, steps: int,
                guidance: float, tiling: TilingConfig, generator: Optional[torch.Generator],
                global_positions: bool, offsets: Optional[torch.Generator]) -> tuple[torch.Tensor, TiledDenoiser, dict]:
        """The VAE latent of ``latent_hw`` from ``generator``'s noise, the tiled denoiser that counted the calls
        (a shifting grid's offsets drawn from ``offsets``), and what the record says of the sampler (its name,
        schedule, guidance)."""

    def rows_per_tile(self, guidance: float) -> int:
        """Network batch rows per tile evaluation (2 under classifier-free guidance)."""


def multidiffusion_tiling(tile_batch_size: int = 1, view: int = 64) -> TilingConfig:
    """MultiDiffusion's views (Bar-Tal et al.; diffusers' panorama pipeline), averaged: ``view`` latent px, the
    base model's native latent (SD 2.1: 64), at stride ``view / 8`` (SD 2.1: 8, the release's; SDXL: 128 at 16,
    docs/methods.md says why)."""
    return TilingConfig("explicit", tile=view, overlap=view - view // 8, weighting="uniform",
                        tile_batch_size=tile_batch_size)


def guided(unet, negative, positive, scale: float) -> Denoiser:
    """A tile denoiser with classifier-free guidance; no guidance (one batch) when ``scale <= 1``.
    ``negative`` and ``positive``: :class:`Conditioning`, or SD 2.1's encoder hidden states alone."""
    negative, positive = as_conditioning(negative), as_conditioning(positive)

    def denoise(tiles: torch.Tensor, t: torch.Tensor, _cond: Optional[torch.Tensor]) -> torch.Tensor:
        count, tiles = tiles.shape[0], tiles.to(unet.dtype)
        if scale <= 1:
            return unet(tiles, t, **positive.expand(count).unet_kwargs()).sample.float()
        both = Conditioning.cat([negative.expand(count), positive.expand(count)])
        uncond, text = unet(torch.cat([tiles, tiles]), t, **both.unet_kwargs()).sample.float().chunk(2)
        return uncond + scale * (text - uncond)

    return denoise


@dataclass
class Stage1Result:
    image: torch.Tensor  # (1, 3, H, W) in [-1, 1]
    unet_calls: int  # network calls; each a batch of 2 per tile under classifier-free guidance
    tile_evaluations: int
    sampler: dict = field(default_factory=dict)  # what the sampling did, for the record (StageOneSampling.denoise)


def sampling_of(models: TextToImageModels) -> StageOneSampling:
    """The base model's stage I sampling: its entry's, or the suite's DDIM loop."""
    return models.base.sampling or DDIM_SAMPLING


def grid_factor(models: TextToImageModels) -> int:
    """Image px per cell of the grid stage I samples and tiles: the VAE's factor times the sampler's packing
    (SD: 8; FLUX: 16, one token), so the multiple a stage I size is rounded to and the unit of its tiles."""
    return vae_factor(models.vae) * sampling_of(models).patch


@torch.no_grad()
def generate(models: TextToImageModels, prompt: str, size: tuple[int, int], *, steps: int,
             guidance: float = DEFAULT_GUIDANCE, tiling: TilingConfig = UNTILED,
             generator: Optional[torch.Generator] = None, vae_tiling: VaeTiling = VaeTiling(),
             global_positions: bool = True, offsets: Optional[torch.Generator] = None) -> Stage1Result:
    """An image of ``size`` (multiples of :func:`grid_factor`) for ``prompt``; the VAE decodes as ``vae_tiling``
    says. ``global_positions``: where the network takes positions (FLUX's rotary ids), each tile's are its place
    in the whole latent; else each tile is an image of its own (MultiDiffusion's views)."""
    factor, multiple = vae_factor(models.vae), grid_factor(models)
    if size[0] % multiple or size[1] % multiple:
        raise ValueError(f"stage I works at multiples of {multiple} px, not {size[0]}x{size[1]}")
    negative, positive = models.guidance_pair(prompt, size)
    latent, tiled, sampler = sampling_of(models).denoise(
        models, negative, positive, (size[0] // factor, size[1] // factor), steps=steps, guidance=guidance,
        tiling=tiling, generator=generator, global_positions=global_positions, offsets=offsets)
    image = decode_latents(models.vae, latent, vae_tiling).clamp_(-1, 1)
    return Stage1Result(image.to(models.vae.dtype), tiled.calls, tiled.tile_evaluations, sampler)


@torch.no_grad()
def denoise(models: TextToImageModels, negative, positive, latent_hw: tuple[int, int], *,
            steps: int, guidance: float = DEFAULT_GUIDANCE, tiling: TilingConfig = UNTILED,
            generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, TiledDenoiser]:
    """Stage I's DDIM latent of ``latent_hw`` from the seeded noise (``negative``, ``positive``: as :func:`guided`
    takes them), and the tiled denoiser that counted the calls."""
    scheduler, latent = start(models, latent_hw, steps, generator)
    if tiling.strategy == "explicit" and (scheduler.config.clip_sample or scheduler.config.thresholding):
        raise ValueError("overlapping views average noise predictions, which equals MultiDiffusion's average of "
                         "DDIM steps only if DDIM neither clips nor thresholds x0; this scheduler config does")
    tiled = TiledDenoiser(guided(models.unet, negative, positive, guidance), tiling)
    return sample(tiled, scheduler, latent), tiled


@dataclass(frozen=True)
class DdimSampling:
    """The suite's stage I on a UNet: DDIM (eta 0) with classifier-free guidance (:func:`denoise`)."""

    name: str = "DDIM (eta 0)"
    patch: int = 1

    def denoise(self, models, negative, positive, latent_hw, *, steps, guidance, tiling, generator,
                global_positions, offsets):
        latent, tiled = denoise(models, negative, positive, latent_hw, steps=steps, guidance=guidance,
                                tiling=tiling, generator=generator)
        return latent, tiled, {"sampler": self.name, "guidance": guidance}

    def rows_per_tile(self, guidance: float) -> int:
        return 2 if guidance > 1 else 1


DDIM_SAMPLING = DdimSampling()


def ddim(models: TextToImageModels, steps: int) -> DDIMScheduler:
    """The base model's DDIM scheduler with its timesteps set for ``steps``."""
    scheduler = DDIMScheduler.from_config(models.scheduler_config)
    scheduler.set_timesteps(steps, device=models.unet.device)
    return scheduler


def start(models: TextToImageModels, latent_hw: tuple[int, int], steps: int,
          generator: Optional[torch.Generator]) -> tuple[DDIMScheduler, torch.Tensor]:
    """The scheduler of a run and its first latent: fp32 noise from ``generator``, scaled as DDIM starts."""
    scheduler = ddim(models, steps)
    shape = (1, models.unet.config.in_channels) + tuple(latent_hw)
    latent = randn_tensor(shape, generator=generator, device=models.unet.device, dtype=torch.float32)
    return scheduler, latent * scheduler.init_noise_sigma
