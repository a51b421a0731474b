"""StableSR behind :class:`baselines.stage2.SRBackbone`, so FSTD and its baselines run on it.

What a stage-II call does with it (IceClear/StableSR's
``sr_val_ddpm_text_T_vqganfin_oldcanvas*.py``, and the ASD authors' ``upscale_accelerate.py``
built on it):

- the bicubic upscale to the target size is encoded by SD's VAE (the checkpoint's
  ``first_stage_model``; a posterior sample times 0.18215): ``z_LR``, the clean LR latent;
- the start latent is ``x_T = sqrt(ᾱ_999) z_LR + sqrt(1 − ᾱ_999) ε`` on the original 1000-step
  schedule, whatever the number of steps;
- DDPM respaced as LDM's ``space_timesteps`` (:mod:`baselines.stablesr.schedule`); the UNet and
  the time-aware encoder are fed the original timestep;
- the spatial condition is ``z_LR`` itself: the tiling engine cuts it into the same windows as
  the latent, and the encoder runs on each tile's LR latent, as StableSR's tiled sampler does;
- the UNet predicts the noise of each tile (eps-prediction), empty prompt, no guidance;
- decoding is the CFW autoencoder: its encoder's features of the same upscaled image fused
  into its decoder with weight ``w`` (``cfw_weight``, 0.5 in the authors' scripts).

The latent stays in fp32; the networks run in the models' dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.utils.torch_utils import randn_tensor

from baselines.stablesr.architecture import SCALING_FACTOR, StableSRModels
from baselines.stablesr.schedule import STABLESR_SCHEDULER, RespacedDDPMScheduler
from baselines.stage2 import VAE_DTYPE_RULE
from baselines.vae_tiling import VaeTiling, encode_moments, latent_sample, vae_factor

DEFAULT_CFW_WEIGHT = 0.5


@dataclass
class StableSRBackbone:
    """StableSR on loaded models; ``cfw_weight`` is CFW's ``w`` (0: the plain SD decoder)."""

    models: StableSRModels
    cfw_weight: float = DEFAULT_CFW_WEIGHT
    vae_tiling: VaeTiling = field(default_factory=VaeTiling)
    name: str = "StableSR"
    sampler: str = "DDPM (ancestral, LDM space_timesteps; networks fed the original timestep)"

    def __post_init__(self):
        if not 0 <= self.cfw_weight <= 1:
            raise ValueError(f"the CFW weight must lie in [0, 1] (0: plain decoder, the authors use 0.5), "
                             f"got {self.cfw_weight}")
        self._upscaled = None

    def describe(self) -> dict:
        """What the results record beside the model's name and weights."""
        models = self.models
        return {"model": models.name, "weights": models.weights, "dtype": str(models.unet.dtype),
                "vae_dtype": str(models.vae.dtype), "vae_dtype_rule": VAE_DTYPE_RULE,
                "latent_factor": self.latent_factor, "files": models.files, "cfw_weight": self.cfw_weight, "prediction": "epsilon",
                "start": "x_T = sqrt(alpha_bar_999) z_LR + sqrt(1 - alpha_bar_999) eps",
                "decode": "CFW decoder in one call (--vae-tiling applies to the encode only)"}

    @property
    def latent_factor(self) -> int:
        return vae_factor(self.models.vae)

    def scheduler(self) -> RespacedDDPMScheduler:
        return RespacedDDPMScheduler(**STABLESR_SCHEDULER)

    def prepare(self, source, upscaled, size, start, scheduler, generator):
        nets = self.models.networks
        moments = encode_moments(nets.first_stage, upscaled, size, self.vae_tiling)
        clean = latent_sample(moments, generator) * SCALING_FACTOR
        noise = randn_tensor(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
        last = torch.tensor([scheduler.config.num_train_timesteps - 1])
        self._upscaled = (upscaled, size)  # CFW's encoder reads it again at decode time
        return scheduler.add_noise(clean, noise, last), clean

    def denoise(self, tiles, t, cond_tiles):
        nets, dtype = self.models.networks, self.models.unet.dtype
        timesteps = torch.as_tensor(t, device=tiles.device).reshape(-1).expand(tiles.shape[0])
        features = nets.encoder(cond_tiles.to(dtype), timesteps)
        with nets.spade.structure(features):
            return nets.unet(tiles.to(dtype), timesteps,
                             encoder_hidden_states=self.models.prompt_embedding.expand(tiles.shape[0], -1, -1)
                             ).sample.float()

    def decode(self, latent):
        if self._upscaled is None:
            raise RuntimeError("StableSRBackbone.decode needs the image prepared by prepare()")
        (upscaled, size), cfw = self._upscaled, self.models.networks.cfw
        image = upscaled(0, 0, *size).to(cfw.vae.device, cfw.vae.dtype)
        features = cfw.encode_features(image)
        del image
        out = cfw.decode((latent / SCALING_FACTOR).to(cfw.vae.device, cfw.vae.dtype), features, self.cfw_weight)
        return out.float().clamp_(-1, 1)
