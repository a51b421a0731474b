"""``demofusion``: progressive upscaling with skip residuals, local views and dilated sampling, on the run's
base model (SD 2.1, SDXL).

DemoFusion (Du et al., CVPR 2024; PRIS-CV/DemoFusion's ``pipeline_demofusion_sdxl.py``, read not
copied) as its release computes it, at the base model's native size ``s`` (the UNet's sample
size × 8: SD 2.1 512 px, SDXL 1024 px):

1. phase 1 is the plain model at the target's shape scaled to ``max side = s`` (or below);
2. phase ``k = 2 .. K`` (``K = floor(max side / s)``) upsamples the previous latent (bicubic) to
   ``k / K`` of the target, noises it to every timestep with one noise draw, and at each step
   mixes it back in: ``x = (1 - c1) x + c1 noised(t)``, ``c1 = c(t) ** cosine_scale_1``, with
   ``c(t) = (1 + cos(pi (T - t) / T)) / 2``: 1 at ``t = T``, 0 at ``t = 0`` (the skip residual);
3. each step's noise prediction blends local views (windows of the native latent size at half
   a window's stride, averaged uniformly: our tiling engine, ``explicit``) with dilated sampling
   (the ``k × k`` interleaved sub-latents ``x[h::k, w::k]`` of a Gaussian-blurred copy, each
   denoised as a whole image, so every latent pixel is predicted exactly once), weighted
   ``1 - c2`` and ``c2 = c(t) ** cosine_scale_2``. DemoFusion blends the views' stepped latents;
   DDIM's step is affine in the prediction with image-wide coefficients, so blending
   predictions is the same;
4. each upscaled phase's result is rescaled to the mean and standard deviation (over the whole
   latent) of phase 1's result, as the release does after every phase (the paper does not say it).

SDXL's micro-conditioning as the release sets it: every phase and dilated sampling use the
``time_ids`` of the final size (original = target = the final size, crop (0, 0), whatever the
phase's own size: the run's :class:`~baselines.base_models.Conditioning` as given), the same pooled
text everywhere; each local view's crop is its corner in the release's jitter padding of
``(window - stride) // 4`` latent px, in image px. A model without ``time_ids`` (SD 2.1) has none.

Where we differ (docs/methods.md audits every formula): the phases end at the target's own size
(rounded up to 64 px, then centre cropped) instead of ``s × K``; local views lie on the engine's
grid (the last one clamped to the edge, a side shorter than a window one view as long) without
DemoFusion's random jitter and its zero padding; DDIM (eta 0) instead of SDXL's Euler, the same
ODE; the suite's VAE decode instead of ``multi_decoder``. ``tests/test_demofusion_reference.py``
holds every phase to the release's own pipeline on both models. Every parameter goes into the record.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor

from baselines.base_models import Conditioning
from baselines.highres.base import MULTIPLE, TrainingFreeSampler
from baselines.sample_record import StageOne
from baselines.settings import working_size
from baselines.stage1 import UNTILED, ddim, denoise, guided
from baselines.tiling import TiledDenoiser, TilingConfig, plan_step
from baselines.vae_tiling import vae_factor

#: What runs where the release does otherwise (named in run.json and in each sample's record).
RUN_AS = {"sampler": "DDIM (eta 0) on the model's betas; the release: SDXL's Euler discrete",
          "random_jitter": False, "decoder": "the suite's VAE decode; the release: multi_decoder (tiled)"}


@dataclass(frozen=True)
class DemoFusionSettings:
    """DemoFusion's published defaults (``sigma``: the value of its README's example; its signature says 1)."""

    cosine_scale_1: float = 3.0  # how fast the skip residual fades
    cosine_scale_2: float = 1.0  # how fast dilated sampling's share fades
    cosine_scale_3: float = 1.0  # how fast the blur before dilated sampling fades
    sigma: float = 0.8  # the blur's standard deviation at t = T, in latent px
    stride_fraction: float = 0.5  # local views' stride as a share of the view (64 of 128 for SDXL)


def cosine_factor(t: float, train_steps: int) -> float:
    """``(1 + cos(pi (T - t) / T)) / 2``: 1 at the first (noisiest) timestep ``T``, 0 at ``t = 0``."""
    return 0.5 * (1 + math.cos(math.pi * (train_steps - float(t)) / train_steps))


def skip_weight(t: float, train_steps: int, settings: DemoFusionSettings = DemoFusionSettings()) -> float:
    """How much of the noised lower-resolution result replaces the latent at timestep ``t``."""
    return cosine_factor(t, train_steps) ** settings.cosine_scale_1


def phase_sizes(size: tuple[int, int], native: int) -> list[tuple[int, int]]:
    """Each phase's size in px: ``k / K`` of ``size`` for ``k = 1 .. K``, up to the next multiple of 64."""
    phases = max(1, int(max(size) / native))
    return [working_size((math.ceil(size[0] * k / phases), math.ceil(size[1] * k / phases)), MULTIPLE)
            for k in range(1, phases + 1)]


def blurred(latent: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """A zero-padded Gaussian blur of each channel, rescaled to the latent's own mean and deviation."""
    x = torch.arange(kernel_size, dtype=latent.dtype, device=latent.device) - (kernel_size - 1) / 2
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = latent.shape[1]
    weight = (kernel[:, None] * kernel[None, :]).expand(channels, 1, kernel_size, kernel_size)
    smooth = F.conv2d(latent, weight, padding=kernel_size // 2, groups=channels)
    return (smooth - smooth.mean()) / smooth.std() * latent.std() + latent.mean()


def dilated_prediction(latent: torch.Tensor, predict, k: int, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The prediction of each of the ``k × k`` interleaved sub-latents, put back in place, over ``latent``
    padded (top and left, with zeros) to a multiple of ``k``; and how many times each pixel was predicted
    (1 everywhere) and the calls made. ``predict(sub_latents)`` takes a batch of them."""
    pad_h, pad_w = -latent.shape[-2] % k, -latent.shape[-1] % k
    padded = F.pad(latent, (pad_w, 0, pad_h, 0))
    prediction, coverage = torch.zeros_like(padded), torch.zeros_like(padded[:, :1])
    offsets = [(h, w) for h in range(k) for w in range(k)]
    calls = 0
    for first in range(0, len(offsets), batch):
        group = offsets[first:first + batch]
        out = predict(torch.cat([padded[..., h::k, w::k] for h, w in group]))
        calls += 1
        for n, (h, w) in enumerate(group):
            prediction[..., h::k, w::k] = out[n * latent.shape[0]:(n + 1) * latent.shape[0]]
            coverage[..., h::k, w::k] += 1
    return prediction[..., pad_h:, pad_w:], coverage[..., pad_h:, pad_w:], calls


def at_crops(cond: Conditioning, crops: torch.Tensor) -> Conditioning:
    """``cond`` for a batch of views, SDXL's crop micro-conditioning (``time_ids[:, 2:4]``) set to each view's
    ``crops`` (px, one row a view); a model without ``time_ids`` gets ``cond`` unchanged for every view."""
    cond = cond.expand(len(crops))
    if "time_ids" not in cond.added:
        return cond
    time_ids = cond.added["time_ids"].clone()
    time_ids[:, 2:4] = crops.to(time_ids)
    return replace(cond, added={**cond.added, "time_ids": time_ids})


def corner_grid(latent_hw: tuple[int, int], device) -> torch.Tensor:
    """Each latent pixel's (row, column), ``(1, 2, H, W)``: the tiling engine cuts it into the views' windows
    with the latent, so each view's first pixel is its corner."""
    rows, cols = torch.meshgrid(torch.arange(latent_hw[0]), torch.arange(latent_hw[1]), indexing="ij")
    return torch.stack([rows, cols])[None].to(device=device, dtype=torch.float32)


def micro_conditioning(cond: Conditioning) -> Optional[dict]:
    """What ``cond``'s SDXL ``time_ids`` say (None for a model without): original size, crop, target size."""
    if "time_ids" not in cond.added:
        return None
    ids = [int(v) for v in cond.added["time_ids"][0].tolist()]
    return {"original_size": ids[:2], "crop_top_left": ids[2:4], "target_size": ids[4:]}


@dataclass
class DemoFusionSampler(TrainingFreeSampler):
    """Phase 1 as the plain base model, then one :meth:`upscale_phase` per factor up to the target."""

    demofusion: DemoFusionSettings = field(default_factory=DemoFusionSettings)

    @property
    def window(self) -> int:
        return self.models.unet.config.sample_size  # the native latent size

    @property
    def stride(self) -> int:
        return max(1, round(self.window * self.demofusion.stride_fraction))

    @property
    def crop_shift(self) -> int:
        """Latent px added to a view's corner for its crop conditioning: the release's jitter padding."""
        return (self.window - self.stride) // 4

    def local_tiling(self) -> TilingConfig:
        return TilingConfig("explicit", tile=self.window, overlap=self.window - self.stride, weighting="uniform",
                            tile_batch_size=self.settings.tiling.get("tile_batch_size") or 1)

    def view_denoiser(self, negative: Conditioning, positive: Conditioning):
        """The local views' guided prediction, each view conditioned on its crop (its corner from
        :func:`corner_grid`, shifted by :attr:`crop_shift`, in image px) as the release does on SDXL."""
        factor = vae_factor(self.models.vae)

        def predict(tiles: torch.Tensor, t: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
            crops = (corners[:, :, 0, 0] + self.crop_shift) * factor
            return guided(self.models.unet, at_crops(negative, crops), at_crops(positive, crops),
                          self.settings.guidance)(tiles, t, None)

        return predict

    def latent(self, negative, positive, latent_hw, seeds):
        generator = seeds.generator("noise")
        factor = vae_factor(self.models.vae)
        sizes = phase_sizes((latent_hw[0] * factor, latent_hw[1] * factor), self.window * factor)
        first = (sizes[0][0] // factor, sizes[0][1] // factor)
        latent, plain = denoise(self.models, negative, positive, first, steps=self.settings.steps,
                                guidance=self.settings.guidance, tiling=UNTILED, generator=generator)
        phases = [{"size": list(sizes[0]), "dilation": 1, "unet_calls": plain.calls, "local_views": 0,
                   "time_ids": micro_conditioning(positive)}]
        anchor = (latent.mean(), latent.std())
        for k, size in enumerate(sizes[1:], start=2):
            latent, phase = self.upscale_phase(latent, (size[0] // factor, size[1] // factor), k, negative, positive,
                                               generator, anchor)
            phases.append({"size": list(size), **phase})
        calls = sum(phase["unet_calls"] for phase in phases)
        return latent, StageOne(unet_calls=calls, tile_evaluations=calls, details={
            "unet_rows_per_tile": 2 if self.settings.guidance > 1 else 1,
            "demofusion": {"phases": phases, **asdict(self.demofusion), **RUN_AS}})

    def upscale_phase(self, previous: torch.Tensor, latent_hw: tuple[int, int], k: int, negative: Conditioning,
                      positive: Conditioning, generator: torch.Generator,
                      anchor: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Phase ``k``: ``previous`` upscaled to ``latent_hw`` and denoised, then rescaled to ``anchor`` (phase 1's
        mean and standard deviation). ``negative``, ``positive``: as the run gives them (SDXL: the final size's
        ``time_ids``)."""
        unet, steps, s, tiling = self.models.unet, self.settings.steps, self.demofusion, self.local_tiling()
        scheduler = ddim(self.models, steps)
        train_steps = scheduler.config.num_train_timesteps
        upsampled = F.interpolate(previous, size=latent_hw, mode="bicubic")
        noise = randn_tensor(upsampled.shape, generator=generator, device=unet.device, dtype=torch.float32)
        predict = guided(unet, negative, positive, self.settings.guidance)
        local = TiledDenoiser(self.view_denoiser(negative, positive), tiling)
        corners = corner_grid(latent_hw, unet.device)
        x = scheduler.add_noise(upsampled, noise, scheduler.timesteps[:1])
        global_calls, weights = 0, []
        for i, t in enumerate(scheduler.timesteps):
            c = cosine_factor(t, train_steps)
            c1 = c ** s.cosine_scale_1
            x = (1 - c1) * x + c1 * scheduler.add_noise(upsampled, noise, t.reshape(1))
            weights.append(c1)
            model_input = scheduler.scale_model_input(x, t)
            eps_local = local(model_input, t, i, corners)
            pad_h, pad_w = -latent_hw[0] % k, -latent_hw[1] % k  # DemoFusion pads top and left, then blurs
            smooth = blurred(F.pad(model_input, (pad_w, 0, pad_h, 0)), 2 * k - 1,
                             s.sigma * (0.99 * c ** s.cosine_scale_3 + 0.01))
            eps_global, _, calls = dilated_prediction(smooth, lambda z: predict(z, t, None), k, tiling.tile_batch_size)
            eps_global = eps_global[..., pad_h:, pad_w:]
            global_calls += calls
            c2 = c ** s.cosine_scale_2
            x = scheduler.step((1 - c2) * eps_local + c2 * eps_global, t, x).prev_sample
        x = (x - x.mean()) / x.std() * anchor[1] + anchor[0]
        return x, {"dilation": k, "unet_calls": local.calls + global_calls,
                   "local_views": local.tile_evaluations // steps, "dilated_views": k * k,
                   "local_tiling": tiling.as_record(),
                   "skip_residual_weight": {"first": weights[0], "last": weights[-1]},
                   "time_ids": self.phase_conditioning(positive, latent_hw, tiling)}

    def phase_conditioning(self, positive: Conditioning, latent_hw: tuple[int, int], tiling: TilingConfig):
        """An upscaled phase's micro-conditioning (None without): the run's sizes, dilated sampling's crop and
        each local view's (px)."""
        used = micro_conditioning(positive)
        if used is None:
            return None
        factor, shift = vae_factor(self.models.vae), self.crop_shift
        views = [[(y + shift) * factor, (x + shift) * factor] for y, x in plan_step(latent_hw, tiling).windows]
        return {"original_size": used["original_size"], "target_size": used["target_size"],
                "dilated_crop_top_left": used["crop_top_left"], "local_view_crops_top_left": views}

    def parameters(self) -> dict:
        return {**asdict(self.demofusion), "native_latent": self.window,
                "local_tiling": self.local_tiling().as_record(),
                "phases": "k/K of the target for k = 1..K, K = floor(max side / native px)",
                "phase_statistics": "each upscaled phase rescaled to phase 1's mean and std",
                "micro_conditioning": "SDXL: the final size's time_ids in every phase and dilated sampling; local "
                                      f"views crop at their corner + {self.crop_shift} latent px (the release's "
                                      "jitter padding); none on a model without", **RUN_AS}
