"""Stage I: text to image at one size, with a base model (SD 2.1, SDXL) or ARAD (SD 2.1 + LoRA), or MultiDiffusion.

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

from dataclasses import dataclass
from typing import Optional

import torch
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor

from baselines.base_models import Conditioning, as_conditioning
from baselines.models import TextToImageModels
from baselines.tiled_sampling import sample
from baselines.tiling import Denoiser, TiledDenoiser, TilingConfig
from baselines.vae_tiling import VaeTiling, decode, vae_factor

DEFAULT_GUIDANCE = 7.5  # diffusers' default; the authors' UI uses 7.0 (docs/design.md, "Stage I")
UNTILED = TilingConfig("none")


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
    unet_calls: int  # each a batch of 2 per tile under guidance
    tile_evaluations: int


@torch.no_grad()
def generate(models: TextToImageModels, prompt: str, size: tuple[int, int], *, steps: int,
             guidance: float = DEFAULT_GUIDANCE, tiling: TilingConfig = UNTILED,
             generator: Optional[torch.Generator] = None, vae_tiling: VaeTiling = VaeTiling()) -> Stage1Result:
    """An image of ``size`` (multiples of the VAE factor) for ``prompt``; the VAE decodes as ``vae_tiling`` says."""
    factor = vae_factor(models.vae)
    if size[0] % factor or size[1] % factor:
        raise ValueError(f"stage I works at multiples of {factor} px, not {size[0]}x{size[1]}")
    negative, positive = models.guidance_pair(prompt, size)
    latent, tiled = denoise(models, negative, positive, (size[0] // factor, size[1] // factor), steps=steps,
                            guidance=guidance, tiling=tiling, generator=generator)
    image = decode(models.vae, latent / models.vae.config.scaling_factor, vae_tiling).clamp_(-1, 1)
    return Stage1Result(image.to(models.vae.dtype), tiled.calls, tiled.tile_evaluations)


@torch.no_grad()
def denoise(models: TextToImageModels, negative, positive, latent_hw: tuple[int, int], *,
            steps: int, guidance: float = DEFAULT_GUIDANCE, tiling: TilingConfig = UNTILED,
            generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, TiledDenoiser]:
    """Stage I's latent of ``latent_hw`` from the seeded noise (``negative``, ``positive``: as :func:`guided`
    takes them), and the tiled denoiser that counted the calls."""
    scheduler, latent = start(models, latent_hw, steps, generator)
    if tiling.strategy == "explicit" and (scheduler.config.clip_sample or scheduler.config.thresholding):
        raise ValueError("overlapping views average noise predictions, which equals MultiDiffusion's average of "
                         "DDIM steps only if DDIM neither clips nor thresholds x0; this scheduler config does")
    tiled = TiledDenoiser(guided(models.unet, negative, positive, guidance), tiling)
    return sample(tiled, scheduler, latent), tiled


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
