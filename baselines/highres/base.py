"""What the training-free methods share: the run's base model (SD 2.1, SDXL) loaded once, the prompt's
conditioning, the VAE, the exact size.

A method subclasses :class:`TrainingFreeSampler` and writes :meth:`latent` (its own denoising
of one latent, given the unconditional and the prompt's :class:`baselines.base_models.Conditioning`) and :meth:`parameters` (every setting it used, for ``run.json``). Sizes are
worked at the next multiple of 64 px (the UNet's three downsamplers on the VAE's ×8) and
centre-cropped to the exact size, as every method here does (docs/design.md, "Sizes").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch

from baselines.base_models import Conditioning, get_base_model
from baselines.models import TextToImageModels, load_text_to_image
from baselines.registry import LoadContext, Method
from baselines.sample_record import Crop, SampleRecord, StageOne
from baselines.settings import Settings, Seeds, centre_crop, check_size, working_size
from baselines.vae_tiling import decode_latents, vae_factor

MULTIPLE = 64  # px: latent sides divisible by the UNet's 8


@dataclass
class TrainingFreeSampler:
    """A stage-I-only method on a base model: ``sampler(prompt, size, seeds)`` gives an image of exactly ``size``."""

    method: Method
    profile: str
    settings: Settings
    models: TextToImageModels
    fast_path: Optional[dict] = None
    input_factor = None  # prompts in, not low-resolution images

    @classmethod
    def load(cls, method: Method, context: LoadContext) -> "TrainingFreeSampler":
        """The run's base model on the profile (``paper``: the user's weights, every missing piece named), fast
        path applied."""
        fast = context.settings.fast_path.resolve(context.device, get_base_model(context.model).half_dtype)
        models = load_text_to_image(context.profile, context.device, fast.torch_dtype, context.paths, context.model)
        fast.apply([models.unet], [models.vae])
        return cls(method, context.profile, context.settings.for_device(context.device), models,
                   fast.as_record(context.device, context.settings.fast_path))

    def __call__(self, prompt: str, size: tuple[int, int], seeds: Seeds,
                 source: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, SampleRecord]:
        check_size(size)
        working = working_size(size, MULTIPLE)
        factor = vae_factor(self.models.vae)
        negative, positive = self.models.guidance_pair(prompt, working)
        latent, stage = self.latent(negative, positive, (working[0] // factor, working[1] // factor), seeds)
        image = decode_latents(self.models.vae, latent, self.settings.vae_tiling).clamp_(-1, 1)
        image, crop = centre_crop(image, size)
        stage = replace(stage, size=working, details={
            "model": self.models.base.title, "method": self.method.name,
            "size_rule": f"requested size, next multiple of {MULTIPLE} px", "steps": self.settings.steps,
            "sampler": "DDIM (eta 0)", "guidance": self.settings.guidance, **stage.details,
            "vae_tiling": self.settings.vae_tiling.effective(tuple(latent.shape[-2:]))})
        return image.to(self.models.vae.dtype), SampleRecord(size, stage, crop=Crop(working, crop))

    def latent(self, negative: Conditioning, positive: Conditioning, latent_hw: tuple[int, int],
               seeds: Seeds) -> tuple[torch.Tensor, StageOne]:
        """The denoised latent of ``latent_hw`` (noise from ``seeds.generator("noise")``) and what the
        sample's record should say of it (its calls, and in ``details`` its own settings; the size is filled in)."""
        raise NotImplementedError

    def parameters(self) -> dict:
        """Every setting of the method, for ``run.json``."""
        raise NotImplementedError

    def one_step(self) -> "TrainingFreeSampler":
        """The same method at one step (``--compile``'s warm-up at every size)."""
        return replace(self, settings=replace(self.settings, steps=1))

    def describe(self) -> dict:
        models = self.models
        return {"method": self.method.name, "profile": self.profile, "backbone": None,
                "weights": {"stage1": models.describe()},
                "lora": None, "steps": self.settings.steps, "sr_steps": None, "guidance": self.settings.guidance,
                "colour_fix": None, "vae_tiling": self.settings.vae_tiling.as_record(), "stage1_tiling": None,
                "sr_tiling": None, "fast_path": self.fast_path, "method_settings": self.parameters()}
