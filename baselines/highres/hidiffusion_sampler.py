"""``hidiffusion``: the ``hidiffusion`` package (RAU-Net and MSW-MSA) on SD 2.1 or SDXL, through diffusers' pipeline.

The package patches a diffusers pipeline's UNet and counts steps through the pipeline's
``__call__``, so the method builds that pipeline (``StableDiffusionPipeline`` or
``StableDiffusionXLPipeline``) from the run's loaded models (DDIM, our conditioning; no
tokenizers, no safety checker, no watermark) and lets the package choose its settings. It
picks them from the pipeline's ``name_or_path``: registering the base model's hub id
(:data:`PACKAGE_MODELS`) gives its defaults for that model, whichever folder, mirror or tiny
stand-in the weights came from. The switching steps it uses depend on the latent size; each
sample's record names them (:func:`chosen_settings`). MSW-MSA draws each window shift from
torch's global generator: a sample seeds it (in a fork, so nothing else moves) from its
``offsets`` stream, so a run replays from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

from baselines.base_models import Conditioning
from baselines.base_models.sd21 import SD21_REPO
from baselines.base_models.sdxl import SDXL_REPO
from baselines.highres.base import TrainingFreeSampler
from baselines.highres.hidiffusion_shim import import_hidiffusion, version
from baselines.sample_record import StageOne


@dataclass(frozen=True)
class PackageModel:
    """How the package sees one of our base models: the hub id it keys its settings on, the pipeline it
    patches (and the options that leave out what we do not use), its function naming the modules it patches,
    its two switching tables and the latent side below which it takes the first (the test in its blocks'
    ``forward``), and whether that first table runs RAU-Net "aggressively" (SDXL's, where the package's
    ``is_aggressive_raunet`` holds)."""

    name_or_path: str
    pipeline: type
    options: Mapping[str, Any]
    keys: str
    tables: tuple[str, str]
    threshold: int
    aggressive: bool
    summary: str


PACKAGE_MODELS = {
    "sd21": PackageModel(SD21_REPO, StableDiffusionPipeline,
                         {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False},
                         "sd15_hidiffusion_key", ("sd15_1024", "sd15_2048"), 256, False,
                         "the package's SD 1.5/2.1 settings (the two share the UNet's module names)"),
    "sdxl": PackageModel(SDXL_REPO, StableDiffusionXLPipeline, {"tokenizer_2": None, "add_watermarker": False},
                         "sdxl_hidiffusion_key", ("sdxl_2048", "sdxl_4096"), 512, True,
                         "the package's SDXL base settings"),
}


def package_model(model: str) -> PackageModel:
    if model not in PACKAGE_MODELS:
        raise ValueError(f"hidiffusion has settings for the base models {', '.join(PACKAGE_MODELS)}, not {model!r}")
    return PACKAGE_MODELS[model]


def hidiffusion_pipeline(models):
    """diffusers' pipeline of ``models``' base model on those modules, registered under its hub id, with
    hidiffusion applied."""
    entry = package_model(models.base_model)
    extra = {} if models.text_encoder_2 is None else {"text_encoder_2": models.text_encoder_2}
    pipe = entry.pipeline(vae=models.vae, text_encoder=models.text_encoder, tokenizer=None, unet=models.unet,
                          scheduler=DDIMScheduler.from_config(models.scheduler_config), **extra, **entry.options)
    pipe.register_to_config(_name_or_path=entry.name_or_path)
    pipe.set_progress_bar_config(disable=True)
    import_hidiffusion().apply_hidiffusion(pipe)
    return pipe


def pipeline_inputs(negative: Conditioning, positive: Conditioning) -> dict:
    """The pipeline's keyword arguments for our conditioning: the text embeddings, and where the model has added
    conditions (SDXL) the pooled ones and the sizes of our ``time_ids``, so that the pipeline's micro-conditioning
    is ours rather than one it derives from the height and width."""
    inputs = {"prompt_embeds": positive.hidden, "negative_prompt_embeds": negative.hidden}
    if not positive.added:
        return inputs
    if set(positive.added) != {"text_embeds", "time_ids"}:
        raise ValueError(f"hidiffusion passes SDXL's added conditions (text_embeds, time_ids) to its pipeline, "
                         f"not {', '.join(sorted(positive.added))}")
    ids = positive.added["time_ids"]
    if not torch.equal(negative.added["time_ids"], ids) or not torch.equal(ids, ids[:1].expand_as(ids)):
        raise ValueError("the pipeline takes one set of time_ids for both branches of guidance")
    values = [int(v) for v in ids[0].tolist()]
    return {**inputs, "pooled_prompt_embeds": positive.added["text_embeds"],
            "negative_pooled_prompt_embeds": negative.added["text_embeds"], "original_size": tuple(values[:2]),
            "crops_coords_top_left": tuple(values[2:4]), "target_size": tuple(values[4:])}


def reset_package_state(unet: torch.nn.Module):
    """Each sample starts from the package's fresh state: step counters at 0 (a sample cut short cannot shift the
    next) and no "aggressive" flag left by a smaller sample (the package sets it and never clears it)."""
    for module in unet.modules():
        if hasattr(module, "_parent"):
            if "timestep" in vars(module):
                module.timestep = 0
            vars(module).pop("aggressive_raunet", None)


def chosen_settings(latent_hw: tuple[int, int], steps: int, model: str = "sd21") -> dict:
    """What the package applies to ``model`` at ``latent_hw``: its own table and keys, read from the package, and
    the steps (from 0, of ``steps``) in which each RAU-Net module acts. Its blocks pool and its samplers stride
    while the step is below ``int(steps * ratio)``, the ratio their key group names; where RAU-Net runs
    aggressively, the samplers only below ``int(steps * aggressive_step / 50)`` and the blocks from there."""
    entry, package = package_model(model), import_hidiffusion().hidiffusion
    table = entry.tables[0] if min(latent_hw) < entry.threshold else entry.tables[1]
    ratios = package.switching_threshold_ratio_dict[table]
    keys = getattr(package, entry.keys)()
    aggressive = entry.aggressive and table == entry.tables[0] and package.is_aggressive_raunet
    early = int(package.aggressive_step / 50 * steps)
    windows = {}
    for group, ratio in (("down_module_key", "T1_ratio"), ("down_module_key_extra", "T2_ratio"),
                         ("up_module_key", "T1_ratio"), ("up_module_key_extra", "T2_ratio")):
        for name in keys.get(group, ()):
            end = int(steps * ratios[ratio])
            sampler = name.endswith(".conv")
            windows[name] = ([0, early] if sampler else [early, end]) if aggressive else [0, end]
    return {"package_version": version(), "name_or_path": entry.name_or_path, "table": table, **ratios,
            "T1_steps": int(steps * ratios["T1_ratio"]), "T2_steps": int(steps * ratios["T2_ratio"]),
            "aggressive_raunet": aggressive, "raunet_modules": list(windows), "raunet_steps": windows,
            "window_attention_modules": keys["windown_attn_module_key"]}


@dataclass
class HiDiffusionSampler(TrainingFreeSampler):
    """The package's pipeline, built once per run; each sample resets its state and seeds its shifts."""

    pipe: Any = field(default=None, repr=False)

    def __post_init__(self):
        if self.pipe is None:
            self.pipe = hidiffusion_pipeline(self.models)

    def latent(self, negative, positive, latent_hw, seeds):
        reset_package_state(self.pipe.unet)
        factor = self.pipe.vae_scale_factor
        with torch.random.fork_rng(devices=[]):  # MSW-MSA draws its window shifts from torch's global generator
            torch.manual_seed(seeds.offsets)
            latent = self.pipe(**pipeline_inputs(negative, positive), height=latent_hw[0] * factor,
                               width=latent_hw[1] * factor, num_inference_steps=self.settings.steps,
                               guidance_scale=self.settings.guidance, generator=seeds.generator("noise"),
                               output_type="latent", return_dict=False)[0]
        calls = self.settings.steps
        chosen = chosen_settings(latent_hw, self.settings.steps, self.models.base_model)
        return latent, StageOne(unet_calls=calls, tile_evaluations=calls, details={
            "unet_rows_per_tile": 2 if self.settings.guidance > 1 else 1,
            "hidiffusion": {**chosen, "window_shift_seed": seeds.offsets}})

    def parameters(self) -> dict:
        entry = package_model(self.models.base_model)
        return {"package": "hidiffusion", "version": version(), "name_or_path": self.pipe.name_or_path,
                "apply_raunet": True, "apply_window_attn": True, "model_settings": entry.summary,
                "pipeline": f"diffusers {entry.pipeline.__name__}, DDIM (eta 0), our conditioning"}
