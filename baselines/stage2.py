"""Stage II: image-conditioned super-resolution in latent tiles (FSTD and its baselines).

What FSTD does to an image (docs/design.md, "Stage II"): bicubic upscale to the target, encode, noise to the
start of the schedule (x_T = sqrt(ᾱ_T)·z + sqrt(1−ᾱ_T)·ε), ancestral DDPM with the tiling
engine (``nonoverlap``, ``explicit`` or ``implicit``), decode, colour fix. The backbone
behind it is a small interface (:class:`SRBackbone`): prepare the start latent and the
spatial condition, denoise one batch of tiles, decode. StableSR can implement it later; the
one here is the SD x4 upscaler (:class:`X4UpscalerBackbone`).

How FSTD maps onto the x4 upscaler (``StableDiffusionUpscalePipeline`` semantics; our
choice, the paper uses StableSR):

- its VAE downsamples by 4 and its UNet sees the latent concatenated with the
  low-resolution image, so the latent is at 1/4 of the output and the condition is an image
  of the same size as the latent: the source (stage-I) image resized bicubically to 1/4 of
  the output, noised to ``noise_level`` (20) by the low-resolution scheduler, as the
  pipeline does. The tiling engine cuts it into the same windows as the latent;
- the start latent is FSTD's: the bicubic upscale to the full output size, encoded by the
  x4 VAE (a posterior sample, as LDM's ``get_first_stage_encoding``), noised to the first
  timestep (999: evenly respaced, trailing), where the pipeline would start from pure noise;
- the paper's tiles are 512 output px (64 latent at ×8); at ×4 that is 128 latent px, also
  the x4 UNet's native size. The offset range (32 latent at ×8 = 256 px) and the explicit
  overlap (32 = 256 px) become 64 latent px: :func:`paper_tiling` keeps pixels fixed;
- empty prompt, no classifier-free guidance (docs/design.md, "Stage II"), and the upscaler's v-prediction; its VAE
  runs in fp32 where its config says ``force_upcast`` (it overflows in fp16), as the pipeline
  does. As in stage I, the latent stays in fp32 and only the networks run in the model dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor

from baselines.bicubic import Bicubic, resize
from baselines.models import UpscalerModels
from baselines.tiled_sampling import sample
from baselines.tiling import TiledDenoiser, TilingConfig, tile_count
from baselines.vae_tiling import ImageRegion, VaeTiling, decode, encode_moments, latent_sample, spans, vae_factor

PAPER_TILE_PX = 512  # 64 latent px at SD's ×8
PAPER_SHIFT_PX = 256  # offset range and explicit overlap: 32 latent px at ×8
COLOUR_FIXES = ("adain", "wavelet", "none")
VAE_DTYPE_RULE = "fp32 where the VAE config says force_upcast (x4: it overflows in fp16), else the model dtype"


def paper_tiling(strategy: str, latent_factor: int, **overrides) -> TilingConfig:
    """The paper's tiling in a backbone's latent px: 512 px tiles, 256 px offset range and overlap."""
    settings = dict(tile=PAPER_TILE_PX // latent_factor, overlap=PAPER_SHIFT_PX // latent_factor,
                    offset_range=PAPER_SHIFT_PX // latent_factor)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return TilingConfig(strategy, **settings)


class SRBackbone(Protocol):
    """What the tiled sampler needs from a super-resolution model."""

    name: str

    @property
    def latent_factor(self) -> int:
        """Output px per latent px."""

    def describe(self) -> dict:
        """The model, its weights and how it runs, for the results."""

    def scheduler(self) -> DDPMScheduler:
        """The model's DDPM schedule, evenly respaced from t = 999 once ``set_timesteps`` is called."""

    def prepare(self, source: torch.Tensor, upscaled: ImageRegion, size: tuple[int, int], start: torch.Tensor,
                scheduler: DDPMScheduler, generator: Optional[torch.Generator]
                ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The start latent at timestep ``start`` and the spatial condition (latent-sized, or None).

        ``upscaled`` reads the bicubic upscale of ``source`` to ``size`` region by region."""

    def denoise(self, tiles: torch.Tensor, t: torch.Tensor, cond_tiles: Optional[torch.Tensor]) -> torch.Tensor:
        """The model output (noise or v) for a batch of tiles."""

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """The image in [-1, 1], float32."""


@dataclass
class X4UpscalerBackbone:
    """The SD x4 upscaler behind :class:`SRBackbone` (``StableDiffusionUpscalePipeline`` semantics);
    its VAE encodes and decodes in tiles as ``vae_tiling`` says."""

    models: UpscalerModels
    vae_tiling: VaeTiling = field(default_factory=VaeTiling)
    name: str = "SD x4 upscaler"

    @property
    def latent_factor(self) -> int:
        return vae_factor(self.models.vae)

    def describe(self) -> dict:
        """The model, its weights and how it runs, for the results."""
        models = self.models
        return {"model": models.name, "weights": models.weights, "repo": models.repo, "variant": models.variant,
                "noise_level": models.noise_level,
                "dtype": str(models.unet.dtype), "vae_dtype": str(models.vae.dtype), "vae_dtype_rule": VAE_DTYPE_RULE,
                "latent_factor": self.latent_factor}

    def scheduler(self) -> DDPMScheduler:
        return DDPMScheduler.from_config(self.models.scheduler_config, timestep_spacing="trailing")

    def prepare(self, source, upscaled, size, start, scheduler, generator):
        unet, vae = self.models.unet, self.models.vae
        low_res_size = (size[0] // self.latent_factor, size[1] // self.latent_factor)
        low_res = resize(source, low_res_size).to(unet.device, unet.dtype)
        noise_level = torch.tensor([self.models.noise_level], device=unet.device)
        low_res_scheduler = DDPMScheduler.from_config(self.models.low_res_scheduler_config)
        low_res = low_res_scheduler.add_noise(
            low_res, randn_tensor(low_res.shape, generator=generator, device=unet.device, dtype=unet.dtype),
            noise_level)

        moments = encode_moments(vae, upscaled, size, self.vae_tiling)
        latent = latent_sample(moments, generator) * vae.config.scaling_factor
        noise = randn_tensor(latent.shape, generator=generator, device=latent.device, dtype=latent.dtype)
        return scheduler.add_noise(latent, noise, start), low_res

    def denoise(self, tiles, t, cond_tiles):
        unet, count = self.models.unet, tiles.shape[0]
        return unet(
            torch.cat([tiles.to(unet.dtype), cond_tiles], dim=1), t,
            encoder_hidden_states=self.models.prompt_embedding.expand(count, -1, -1),
            class_labels=torch.full((count,), self.models.noise_level, device=tiles.device)).sample.float()

    def decode(self, latent):
        return decode(self.models.vae, latent / self.models.vae.config.scaling_factor, self.vae_tiling).clamp_(-1, 1)


def adain(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and std of ``image`` set to those of ``reference`` (StableSR's AdaIN fix)."""
    return _adain_with(image, channel_stats(image), channel_stats(reference))


def channel_stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) over the pixels, std with Bessel's correction, shaped (B, C, 1, 1)."""
    std, mean = torch.std_mean(image, dim=(-2, -1), keepdim=True)
    return mean, std


def _adain_with(image: torch.Tensor, stats, reference_stats) -> torch.Tensor:
    (mean, std), (ref_mean, ref_std) = stats, reference_stats
    return ((image - mean) / (std + 1e-5) * ref_std + ref_mean).clamp(-1, 1)


def _low_frequencies(image: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """The residual after ``levels`` dilated 3×3 binomial blurs (StableSR's wavelet decomposition)."""
    kernel = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=image.dtype, device=image.device) / 16
    kernel = kernel.expand(image.shape[1], 1, 3, 3)
    low = image
    for level in range(levels):
        radius = 2 ** level
        padded = F.pad(low, (radius,) * 4, mode="replicate")
        low = F.conv2d(padded, kernel, groups=image.shape[1], dilation=radius)
    return low


def wavelet(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """High frequencies of ``image`` on the low frequencies of ``reference`` (StableSR's wavelet fix)."""
    return (image - _low_frequencies(image) + _low_frequencies(reference)).clamp(-1, 1)


#: Px of context the wavelet fix needs around a tile: its five blurs reach 1 + 2 + 4 + 8 + 16.
WAVELET_HALO = 31
#: Px per side of the tiles the colour fix and the 8-bit conversion work in.
FIX_TILE = 512


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> 0..255 as diffusers' image processor rounds it, a band of rows at a time: done whole, its
    float32 temporaries are each as large as the image (805 MB at 8192²), more than the tiled decode holds."""
    out = torch.empty(image.shape, dtype=torch.uint8, device=image.device)
    for top, bottom in spans(image.shape[-2], FIX_TILE):
        out[..., top:bottom, :] = ((image[..., top:bottom, :].float().clamp(-1, 1) / 2 + 0.5) * 255).round()
    return out


def region_stats(region: ImageRegion, size: tuple[int, int], tile: int = FIX_TILE):
    """:func:`channel_stats` of an image read region by region (float64 sums, one pass)."""
    total = squares = None
    for top, bottom in spans(size[0], tile):
        for left, right in spans(size[1], tile):
            part = region(top, left, bottom - top, right - left).double()
            part_sum, part_squares = part.sum(dim=(-2, -1), keepdim=True), part.square().sum(dim=(-2, -1), keepdim=True)
            total = part_sum if total is None else total + part_sum
            squares = part_squares if squares is None else squares + part_squares
    count = size[0] * size[1]
    mean = total / count
    std = ((squares - total * mean) / (count - 1)).clamp_min(0).sqrt()
    return mean.float(), std.float()


def colour_fixed_uint8(image: torch.Tensor, reference: ImageRegion, kind: str, tile: int = FIX_TILE) -> torch.Tensor:
    """The colour fix (:func:`adain`, :func:`wavelet` or none) of ``image`` against a reference read region by region, as 8-bit.

    Works tile by tile, so that beside ``image`` only the 8-bit result is full size: AdaIN's
    statistics are gathered first (the reference's in one pass over its regions), the
    wavelet fix reads :data:`WAVELET_HALO` px of context around each tile, which makes it
    exact (the blurs' replicate padding falls where the whole image has it).
    """
    if kind not in COLOUR_FIXES:
        raise ValueError(f"unknown colour fix {kind!r}; choose one of {', '.join(COLOUR_FIXES)}")
    height, width = image.shape[-2:]
    out = torch.empty(image.shape, dtype=torch.uint8, device=image.device)
    if kind == "adain":
        stats, reference_stats = channel_stats(image), region_stats(reference, (height, width), tile)
    for rows in spans(height, tile):
        for cols in spans(width, tile):
            core = (..., slice(*rows), slice(*cols))
            if kind == "none":
                fixed = image[core]
            elif kind == "adain":
                fixed = _adain_with(image[core], stats, reference_stats)
            else:
                top, left = max(0, rows[0] - WAVELET_HALO), max(0, cols[0] - WAVELET_HALO)
                bottom, right = min(height, rows[1] + WAVELET_HALO), min(width, cols[1] + WAVELET_HALO)
                context = image[..., top:bottom, left:right]
                fixed = wavelet(context, reference(top, left, bottom - top, right - left).to(image.dtype))
                fixed = fixed[..., rows[0] - top:rows[1] - top, cols[0] - left:cols[1] - left]
            out[core] = to_uint8(fixed)
    return out


@dataclass
class Stage2Result:
    image: torch.Tensor  # (1, 3, H, W), 8-bit
    latent_size: tuple[int, int]
    tiles_per_step: int
    denoiser_calls: int
    tile_evaluations: int
    offsets: list[tuple[int, int]]


@torch.no_grad()
def super_resolve(backbone: SRBackbone, source: torch.Tensor, size: tuple[int, int], *,
                  tiling: TilingConfig, steps: int, colour: str = "adain",
                  generator: Optional[torch.Generator] = None,
                  offsets: Optional[torch.Generator] = None) -> Stage2Result:
    """``source`` (any size, [-1, 1]) super-resolved to ``size`` (multiples of the latent factor), as 8-bit.

    Beside the latents only two tensors are full size: the decoded float image and the
    8-bit result (the upscaled source is read region by region, the VAE tiled).

    ``generator`` seeds the encoder sample, the start noise, the condition's noise and
    DDPM's ancestral noise; ``offsets`` seeds the implicit grid's shifts, apart, so that
    changing the tiling never changes the noise.
    """
    factor = backbone.latent_factor
    if size[0] % factor or size[1] % factor:
        raise ValueError(f"stage II works at multiples of {factor} px, not {size[0]}x{size[1]}")
    scheduler = backbone.scheduler()
    scheduler.set_timesteps(steps)

    upscaled = Bicubic(source, size)  # read region by region, never whole
    start, cond = backbone.prepare(source, upscaled, size, scheduler.timesteps[:1], scheduler, generator)

    tiled = TiledDenoiser(backbone.denoise, tiling, offsets)
    latent = sample(tiled, scheduler, start, cond, generator)
    del start, cond

    image = colour_fixed_uint8(backbone.decode(latent), upscaled, colour)
    latent_size = tuple(latent.shape[-2:])
    return Stage2Result(image, latent_size, tile_count(latent_size, tiling), tiled.calls,
                        tiled.tile_evaluations, tiled.offsets)
