"""``i-max``: I-Max's projected flow on FLUX.1 [dev] (Du et al. 2024, arXiv 2410.07536; PRIS-CV/I-Max at
3b38c1153086f404fbfdde2b2a200c3b67c4ed83, ``pipeline_flux_imax.py``), re-implemented on diffusers' FLUX.

Two phases, each a FLUX flow-matching run (:mod:`baselines.flow_matching`'s token grid):

1. **Guidance**: FLUX at the native size, the target divided by ``k = round(sqrt(HW) / 1024)``
   (the release's rule; 1 near 1 MP), statically shifted by 3, embedded guidance the run's (3.5),
   FLUX's rotary frequencies interpolated as in phase 2 (below 4096 image tokens they rise).
   Decoded, resized bicubically to the target in pixels, encoded again (a sample of the VAE's
   posterior): the guidance latent ``x_g``.
2. **Extrapolation**: fresh noise at the target, statically shifted by 6, embedded guidance 7, the
   transformer extended for the larger image as the release extends it: rotary frequencies the
   larger of NTK-scaled (theta x 10) and interpolated ones (divided by ``sqrt((S - 512) / 4096)``,
   ``S`` the ids of text and image), attention scaled by ``sqrt(log_4608 L)`` (``L`` the keys), the
   T5 tokens repeated once per native-size block of the image with their ids moved to it, and a
   latent padded by one pixel on every side on even steps ("swin"). Each step's velocity ``v`` is
   projected toward the guidance flow ``u = (x_t - x_g) / sigma``: with ``c = (1 + cos(pi i / N)) / 2``,
   ``v + c (u - v) + (1 - c) (LP u - LP v)`` (the release's default "cosine_shift"), ``LP`` the
   level-1 Haar low band of the 16-channel latent, i.e. the mean of each token's 2x2 latent pixels.

Differences from the release, which ran on diffusers 0.30 (docs/methods.md, "I-Max"): the
suite's ``--steps`` sets both phases (the release: 30 and 20); the decode and encode run untiled or
as ``--vae-tiling`` says (the release tiles them); the posterior sample is drawn from the run's
noise generator (the release: torch's global one); a run with an odd step count ends on an unpadded
latent (the release would end padded); the Haar low band is computed in fp32 on the token grid (the
release: pywt on the CPU). With those set alike, both phases' latents equal the release's run on the
same tiny FLUX (tests/test_imax.py, fixture tests/fixtures/imax/).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.utils.torch_utils import randn_tensor

from baselines.base_models import Conditioning
from baselines.flow_matching import cell_coordinates, pack, transformer_velocity, unpack
from baselines.highres.base import TrainingFreeSampler
from baselines.sample_record import Crop, SampleRecord, StageOne
from baselines.settings import Seeds, centre_crop, check_size, working_size
from baselines.vae_tiling import decode_latents, encode_latents

NATIVE_SIDE = 1024  # the release's native resolution
NATIVE_TOKENS = 4608  # its attention's reference length: 4096 image + 512 text tokens
TEXT_TOKENS = 512
MULTIPLE = 16  # px per token


@dataclass(frozen=True)
class IMaxSettings:
    """The release's ``__call__`` defaults (``pipeline_flux_imax.py``), each recorded."""

    guidance_extrapolated: float = 7.0
    shift_native: float = 3.0
    shift_extrapolated: float = 6.0
    ntk_factor: float = 10.0
    schedule: str = "cosine_shift"
    proportional_attention: bool = True
    text_duplication: bool = True
    swin: bool = True


def native_size(size: tuple[int, int]) -> tuple[int, int]:
    """The guidance phase's size: the target divided by the release's integer scale, in whole tokens."""
    scale = max(1, int(math.sqrt(size[0] * size[1]) / NATIVE_SIDE + 0.5))
    return tuple(max(MULTIPLE, side // scale // MULTIPLE * MULTIPLE) for side in size)


def low_band(grid: torch.Tensor) -> torch.Tensor:
    """The level-1 Haar approximation of the unpacked latent, on its token grid: each token's 2x2 latent
    pixels (its 4 sub-channels per latent channel) replaced by their mean."""
    batch, channels, height, width = grid.shape
    means = grid.float().view(batch, channels // 4, 4, height, width).mean(dim=2, keepdim=True)
    return means.expand(-1, -1, 4, -1, -1).reshape(grid.shape).to(grid.dtype)


def rotary_frequencies(axes_dim, theta: float, ids: torch.Tensor, ntk_factor: float, interpolation: float):
    """FLUX's rotary cos and sin (``FluxPosEmbed``'s layout) with each axis's frequency the larger of its
    NTK-scaled and its interpolated value, as the release's ``rope``."""
    cos_out, sin_out = [], []
    for axis, dim in enumerate(axes_dim):
        exponents = torch.arange(0, dim, 2, dtype=torch.float64, device=ids.device) / dim
        omega = torch.maximum(1.0 / (theta * ntk_factor) ** exponents, 1.0 / theta ** exponents / interpolation)
        angles = torch.outer(ids[:, axis].float(), omega)
        cos_out.append(angles.cos().repeat_interleave(2, dim=1).float())
        sin_out.append(angles.sin().repeat_interleave(2, dim=1).float())
    return torch.cat(cos_out, dim=-1), torch.cat(sin_out, dim=-1)


class ExtrapolatedRotary(torch.nn.Module):
    """Replaces ``transformer.pos_embed`` in both phases (:func:`rotary_frequencies`; the release's ``rope``
    interpolates by the token count at every size, so at 4096 image tokens and NTK 1 it is FLUX's own)."""

    def __init__(self, original, ntk_factor: float):
        super().__init__()
        self.theta, self.axes_dim, self.ntk_factor = original.theta, original.axes_dim, ntk_factor

    def forward(self, ids: torch.Tensor):
        interpolation = math.sqrt(max(ids.shape[0] - TEXT_TOKENS, 1) / (NATIVE_TOKENS - TEXT_TOKENS))
        return rotary_frequencies(self.axes_dim, self.theta, ids, self.ntk_factor, interpolation)


class ScaledQuery(torch.nn.Module):
    """A query norm whose output is multiplied by ``factor.value``: with SDPA's own 1/sqrt(d), the attention
    scale becomes ``factor / sqrt(d)`` (the release's proportional attention, on diffusers' processor)."""

    def __init__(self, norm, factor):
        super().__init__()
        self.norm, self.factor = norm, factor

    def forward(self, x):
        return self.norm(x) * self.factor.value


@dataclass
class _Factor:
    value: float = 1.0


@contextmanager
def extrapolating(transformer, ntk_factor: float, factor: Optional[_Factor] = None):
    """The transformer with the release's rotary frequencies and, given a ``factor``, scaled queries;
    restored after."""
    original = transformer.pos_embed
    norms = [(attention, name, getattr(attention, name)) for module in transformer.modules()
             for attention in [getattr(module, "attn", None)] if attention is not None
             for name in ("norm_q", "norm_added_q") if getattr(attention, name, None) is not None]
    transformer.pos_embed = ExtrapolatedRotary(original, ntk_factor)
    if factor is not None:
        for attention, name, norm in norms:
            setattr(attention, name, ScaledQuery(norm, factor))
    try:
        yield
    finally:
        transformer.pos_embed = original
        for attention, name, norm in norms:
            setattr(attention, name, norm)


def _scheduler(config: dict, steps: int, shift: float, device) -> FlowMatchEulerDiscreteScheduler:
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(config, use_dynamic_shifting=False, shift=shift)
    scheduler.set_timesteps(steps, device=device, sigmas=np.linspace(1.0, 1 / steps, steps))
    return scheduler


@dataclass
class IMaxSampler(TrainingFreeSampler):
    """I-Max on a loaded FLUX [dev]: ``sampler(prompt, size, seeds)`` gives an image of exactly ``size`` (its own
    two phases in place of the UNet methods' one DDIM latent)."""

    imax: IMaxSettings = IMaxSettings()

    def velocity(self, grid, t, text: Conditioning, guidance: float, duplicate: bool, factor: _Factor):
        """FLUX's velocity of the whole token grid, ids from its cells, the T5 tokens once per native block."""
        transformer, (_, _, height, width) = self.models.unet, grid.shape
        copies = ((max(1, height // 64), max(1, width // 64)) if duplicate else (1, 1))
        hidden = text.hidden.repeat(1, copies[0] * copies[1], 1)
        blocks = torch.tensor([[0.0, 64 * i, 64 * j] for i in range(copies[0]) for j in range(copies[1])],
                              device=grid.device)
        text_ids = blocks.repeat_interleave(text.hidden.shape[1], dim=0)  # each copy's tokens at its block
        factor.value = math.sqrt(math.log(hidden.shape[1] + height * width, NATIVE_TOKENS))
        return transformer_velocity(transformer, grid, t, hidden, text_ids, text.added["pooled_projections"], guidance,
                                    cell_coordinates(height, width, grid.device)[0])

    def native_flow(self, text: Conditioning, native, generator) -> torch.Tensor:
        """Phase 1: FLUX at ``native`` (the release's rotary interpolation, NTK 1), the packed result."""
        models, steps = self.models, self.settings.steps
        grid = pack(randn_tensor((1, 16, native[0] // 8, native[1] // 8), generator=generator,
                                 device=models.unet.device, dtype=torch.float32))
        scheduler = _scheduler(models.scheduler_config, steps, self.imax.shift_native, grid.device)
        with extrapolating(models.unet, 1.0):
            for t in scheduler.timesteps:
                v = self.velocity(grid, t, text, self.settings.guidance, False, _Factor())
                grid = scheduler.step(v, t, grid).prev_sample
        return grid

    def guidance_latent(self, native_grid: torch.Tensor, size, generator) -> torch.Tensor:
        """Phase 1's image decoded, resized bicubically to ``size`` and encoded again: the packed x_g."""
        vae = self.models.vae
        image = F.interpolate(decode_latents(vae, unpack(native_grid), self.settings.vae_tiling), size=size,
                              mode="bicubic")
        return pack(encode_latents(vae, image.to(vae.dtype), generator).float())

    def extrapolated_flow(self, text: Conditioning, guide: torch.Tensor, generator) -> torch.Tensor:
        """Phase 2: fresh noise at the target, each velocity projected toward the guidance flow."""
        models, steps = self.models, self.settings.steps
        grid = pack(randn_tensor(unpack(guide).shape, generator=generator, device=guide.device, dtype=torch.float32))
        scheduler = _scheduler(models.scheduler_config, steps, self.imax.shift_extrapolated, grid.device)
        factor = _Factor()
        with extrapolating(models.unet, self.imax.ntk_factor, factor if self.imax.proportional_attention else None):
            for i, t in enumerate(scheduler.timesteps):
                padded = self.imax.swin and i % 2 == 0
                x, g = (_pad(grid), _pad(guide)) if padded else (grid, guide)
                v = self.velocity(x, t, text, self.imax.guidance_extrapolated, self.imax.text_duplication, factor)
                x = scheduler.step(self.projected(v, x, g, float(t) / 1000, i, steps), t, x).prev_sample
                grid = _crop(x) if padded else x
        return grid

    def sample(self, text: Conditioning, size, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Both phases' packed results at ``size`` (whole tokens), noise and posterior from ``generator``."""
        native = self.native_flow(text, native_size(size), generator)
        return native, self.extrapolated_flow(text, self.guidance_latent(native, size, generator), generator)

    def projected(self, v, grid, guide, sigma: float, i: int, steps: int) -> torch.Tensor:
        """The velocity projected toward the guidance flow (the module's docstring)."""
        u = (grid - guide) / (sigma + 1e-6)
        c = 0.5 * (1 + math.cos(math.pi * i / steps))
        if self.imax.schedule == "cosine_shift":
            return v + c * (u - v) + (1 - c) * (low_band(u) - low_band(v))
        raise ValueError(f"unknown I-Max schedule {self.imax.schedule!r}")

    def __call__(self, prompt: str, size: tuple[int, int], seeds: Seeds,
                 source: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, SampleRecord]:
        check_size(size)
        working, models, steps = working_size(size, MULTIPLE), self.models, self.settings.steps
        native, generator = native_size(working), seeds.generator("noise")
        _, text = models.guidance_pair(prompt, working)
        with torch.no_grad():
            _, grid = self.sample(text, working, generator)
            image = decode_latents(models.vae, unpack(grid), self.settings.vae_tiling).clamp_(-1, 1)
        image, crop = centre_crop(image, size)
        stage = StageOne(working, unet_calls=2 * steps, tile_evaluations=2 * steps, details={
            "model": models.base.title, "method": self.method.name, "size_rule": f"requested size, next multiple of "
            f"{MULTIPLE} px", "steps": steps, "sampler": "flow-matching Euler, static shifts", "guidance":
            f"embedded {self.settings.guidance:g} (native), {self.imax.guidance_extrapolated:g} (extrapolation)",
            "native_size": list(native), **self.parameters()})
        return image.to(models.vae.dtype), SampleRecord(size, stage, crop=Crop(working, crop))

    def parameters(self) -> dict:
        return {"imax": {**vars(self.imax), "source": "PRIS-CV/I-Max 3b38c11 pipeline_flux_imax.py defaults"}}


def _pad(grid: torch.Tensor) -> torch.Tensor:
    """The token grid of the latent padded by one latent pixel of zeros on every side (the release's swin step)."""
    return pack(F.pad(unpack(grid), (1, 1, 1, 1)))


def _crop(grid: torch.Tensor) -> torch.Tensor:
    return pack(unpack(grid)[:, :, 1:-1, 1:-1])
