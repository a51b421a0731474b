"""The eps-prediction diffusion loss on the SD training schedule, and a fixed-noise loss to compare UNets."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from baselines.vae_tiling import encode_latents
from datasets_build.sizes import Size

from .buckets import BucketDataset
from .data import TrainingData
from .train_models import as_train_models, encode_captions

#: The Stable Diffusion training noise schedule (SD 1.x / 2.x).
NOISE_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def noise_scheduler():
    """The SD training schedule: DDPM, scaled_linear 0.00085–0.012, 1000 steps, eps-prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**NOISE_SCHEDULE, prediction_type="epsilon")


def diffusion_loss(unet, scheduler, latents: torch.Tensor, hidden: torch.Tensor, noise: torch.Tensor,
                   timesteps: torch.Tensor) -> torch.Tensor:
    """MSE between the UNet's eps-prediction and the noise, for given (noise, t)."""
    noisy = scheduler.add_noise(latents, noise, timesteps)
    pred = unet(noisy, timesteps, encoder_hidden_states=hidden).sample
    return F.mse_loss(pred.float(), noise.float())


def fixed_loss(models: Any, data: TrainingData, sizes: Sequence[Size], *, unet: torch.nn.Module | None = None,
               seed: int = 1234, repeats: int = 2) -> float:
    """The mean eps-MSE over fixed (noise, t) pairs: one per example and repeat.

    Latents are the VAE posterior means, noise and timesteps come from ``seed``, so two
    calls with the same arguments compare UNets (e.g. before and after training) on
    exactly the same problems.
    """
    m = as_train_models(models)
    unet = unet if unet is not None else m.unet
    device = next(unet.parameters()).device
    dtype = next(p for n, p in unet.named_parameters() if "lora_" not in n).dtype
    dataset = BucketDataset(data, sizes)
    scheduler = noise_scheduler()
    gen = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    was_training = unet.training
    unet.eval()
    try:
        with torch.no_grad():
            for i in range(len(dataset)):
                pixels, caption = dataset[i]
                latents = encode_latents(m.vae, pixels[None].to(device, module_dtype(m.vae)), None).to(dtype)
                hidden = encode_captions(m, [caption], device).to(dtype)
                for _ in range(repeats):
                    noise = torch.randn(latents.shape, generator=gen).to(device, dtype)
                    t = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=gen).to(device)
                    total += float(diffusion_loss(unet, scheduler, latents, hidden, noise, t))
                    count += 1
    finally:
        unet.train(was_training)
    return total / count


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype
