"""``hidiffusion``: the ``hidiffusion`` package (RAU-Net and MSW-MSA) on SD 2.1, through diffusers' pipeline.

The package patches a diffusers ``StableDiffusionPipeline``'s UNet and counts steps through
the pipeline's ``__call__``, so the method builds that pipeline from our SD 2.1 models (DDIM,
our prompt embeddings; no tokenizer, no safety checker) and lets the package choose its
settings. It picks them from the pipeline's ``name_or_path``: registering SD 2.1-base's id
gives its SD 2.1 defaults, whichever folder, mirror or tiny stand-in the weights came from.
The switching ratios it uses depend on the latent size; each sample's record names them.
MSW-MSA draws each window shift from torch's global generator: a sample seeds it (in a fork,
so nothing else moves) from its ``offsets`` stream, so a run replays from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

from baselines.highres.base import TrainingFreeSampler
from baselines.highres.hidiffusion_shim import import_hidiffusion, version
from baselines.models import SD21_REPO


def hidiffusion_pipeline(models, name_or_path: str = SD21_REPO) -> StableDiffusionPipeline:
    """diffusers' SD pipeline on ``models``, registered as ``name_or_path``, with hidiffusion applied."""
    pipe = StableDiffusionPipeline(vae=models.vae, text_encoder=models.text_encoder, tokenizer=None,
                                   unet=models.unet, scheduler=DDIMScheduler.from_config(models.scheduler_config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.register_to_config(_name_or_path=name_or_path)
    pipe.set_progress_bar_config(disable=True)
    import_hidiffusion().apply_hidiffusion(pipe)
    return pipe


def reset_step_counters(unet: torch.nn.Module):
    """Start the package's per-module step counters at 0, so that a sample cut short cannot shift the next."""
    for module in unet.modules():
        if hasattr(module, "_parent") and "timestep" in vars(module):
            module.timestep = 0


def chosen_settings(latent_hw: tuple[int, int], steps: int) -> dict:
    """What the package applies to SD 2.1 at ``latent_hw``: its own table, read from the package."""
    package = import_hidiffusion().hidiffusion
    table = "sd15_1024" if min(latent_hw) < 256 else "sd15_2048"  # the package's own test on the latent size
    ratios = package.switching_threshold_ratio_dict[table]
    keys = package.sd15_hidiffusion_key()
    return {"package_version": version(), "table": table, **ratios, "T1_steps": int(steps * ratios["T1_ratio"]),
            "T2_steps": int(steps * ratios["T2_ratio"]),
            "raunet_modules": keys["down_module_key"] + keys["down_module_key_extra"] + keys["up_module_key"]
            + keys["up_module_key_extra"], "window_attention_modules": keys["windown_attn_module_key"]}


@dataclass
class HiDiffusionSampler(TrainingFreeSampler):
    """The package's pipeline, built once per run; each sample resets its step counters and seeds its shifts."""

    pipe: Any = field(default=None, repr=False)

    def __post_init__(self):
        if self.pipe is None:
            self.pipe = hidiffusion_pipeline(self.models)

    def latent(self, negative, positive, latent_hw, seeds):
        reset_step_counters(self.pipe.unet)
        factor = self.pipe.vae_scale_factor
        with torch.random.fork_rng(devices=[]):  # MSW-MSA draws its window shifts from torch's global generator
            torch.manual_seed(seeds.offsets)
            latent = self.pipe(prompt_embeds=positive.hidden, negative_prompt_embeds=negative.hidden, height=latent_hw[0] * factor,
                               width=latent_hw[1] * factor, num_inference_steps=self.settings.steps,
                               guidance_scale=self.settings.guidance, generator=seeds.generator("noise"),
                               output_type="latent", return_dict=False)[0]
        calls = self.settings.steps
        return latent, {"unet_calls": calls, "unet_rows_per_tile": 2 if self.settings.guidance > 1 else 1,
                        "tile_evaluations": calls, "hidiffusion": {**chosen_settings(latent_hw, self.settings.steps),
                                                                   "window_shift_seed": seeds.offsets}}

    def parameters(self) -> dict:
        return {"package": "hidiffusion", "version": version(), "name_or_path": self.pipe.name_or_path,
                "apply_raunet": True, "apply_window_attn": True,
                "model_settings": "the package's SD 1.5/2.1 settings (the two share the UNet's module names)",
                "pipeline": "diffusers StableDiffusionPipeline, DDIM (eta 0), our prompt embeddings"}
