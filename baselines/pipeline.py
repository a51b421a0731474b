"""The paper's pipelines as stages: stage I (a base model, SD 2.1 by default, or ARAD, at the target or the
nearest bucket, or MultiDiffusion), then stage II (tiled super-resolution), then a centre crop to the exact size.

Written once for every base model: the buckets, MultiDiffusion's view and whether ARAD's LoRA applies are
read from the run's :class:`baselines.base_models.BaseModel` (SDXL: its 40 training buckets, 128-latent
views, no LoRA since it was trained on its buckets), never from its name.

:class:`Stages` is what a built-in method is made of; ``Stages(...)(method, context)`` loads
its models once and gives an :class:`AnySizePipeline`, the sampler the runner calls.
From a bucket to the target, stage II's bicubic upscale also covers ratios that are not
integral (docs/design.md, "Stage II").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import torch

from baselines.base_models import DEFAULT_MODEL, get_base_model
from baselines.models import TextToImageModels, asd_cache_dir, load_text_to_image, load_upscaler
from baselines.paper_weights import (BASE, STABLESR_FILES, WeightPaths, locate_piece, paper_needs,
                                     resolve_paper_weights)
from baselines.profiles import get_profile
from baselines.registry import LoadContext, Method
from baselines.sample_record import Crop, SampleRecord, StageOne, StageTwo
from baselines.settings import Settings, Seeds, centre_crop, check_size, nearest_bucket, working_size
from baselines.stage1 import generate, grid_factor, sampling_of
from baselines.stage2 import SRBackbone, X4UpscalerBackbone, super_resolve
from baselines.stablesr.backbone import StableSRBackbone
from baselines.stablesr.loading import random_models, released_models
from baselines.tiling import TilingConfig
from baselines.vae_tiling import vae_factor


@dataclass(frozen=True)
class Stages:
    """A built-in method's stages: stage I's model (``base``: the run's base model as it is, ``arad``: that model
    made to take any aspect ratio, i.e. SD 2.1 with the ARAD LoRA, a model trained on its buckets (SDXL) as it
    is; None: the input is an LR image), its size rule (``target``, ``bucket``: Eq. 1 over the base model's
    buckets, ``multidiffusion``, or ``fstd``: at the target, tiled by FSTD's shifted partition, each tile at its
    global positions) and stage II's tiling strategy (None: no stage II; ``any``: the run's)."""

    base: Optional[str] = None
    stage1: str = "target"
    stage2: Optional[str] = None

    @property
    def needs(self) -> tuple[str, ...]:
        """The weights the ``paper`` profile must find for these stages (on SD 2.1: on another base model,
        :func:`baselines.paper_weights.paper_needs` says which of them it comes to)."""
        wanted = {BASE: self.base is not None, "lora": self.base == "arad", "upscaler": self.stage2 is not None}
        return tuple(piece for piece, needed in wanted.items() if needed)

    def __call__(self, method: Method, context: LoadContext) -> "AnySizePipeline":
        return load_pipeline(method, self, context.profile, context.settings, context.device, context.paths,
                             context.model)


@dataclass
class AnySizePipeline:
    """A method on loaded models: ``pipeline(prompt, size, seeds)`` gives an image of exactly ``size``."""

    method: Method
    stages: Stages
    profile: str
    settings: Settings
    text_to_image: Optional[TextToImageModels]
    backbone: Optional[SRBackbone]
    sr_tiling: Optional[TilingConfig] = None
    lora: Optional[dict] = None
    fast_path: Optional[dict] = None  # FastPath.as_record of the settings in force
    lora_note: Optional[str] = None  # why an ARAD method runs without the LoRA (a model trained on buckets)

    def __call__(self, prompt: str, size: tuple[int, int], seeds: Seeds,
                 source: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, SampleRecord]:
        """The image (1, 3, H, W) in [-1, 1] and the sample's record; ``source`` feeds stage II alone."""
        check_size(size)
        stage_one = stage_two = None

        # 1. stage I: text to image, at the requested size or the nearest bucket
        if self.stages.base:
            stage1_size, rule = self.stage1_size(size)
            tiling = self.stage1_tiling()
            result = generate(self.text_to_image, prompt, stage1_size, steps=self.settings.steps,
                              guidance=self.settings.guidance, tiling=tiling,
                              generator=seeds.generator("noise"), vae_tiling=self.settings.vae_tiling,
                              global_positions=self.stages.stage1 != "multidiffusion",
                              offsets=seeds.generator("offsets"))
            image = result.image
            stage_one = StageOne(stage1_size, result.unet_calls, result.tile_evaluations, {
                "model": self.stage1_model(), "size_rule": rule, "steps": self.settings.steps, **result.sampler,
                "unet_rows_per_tile": sampling_of(self.text_to_image).rows_per_tile(self.settings.guidance),
                "tiling": tiling.as_record(),
                "vae_tiling": self.settings.vae_tiling.effective(self.latent_size(stage1_size, self.text_to_image.vae))})
        else:
            image = source

        # 2. stage II: tiled super-resolution to the target
        if self.stages.stage2:
            sr_size = working_size(size, self.backbone.latent_factor)
            sr = super_resolve(self.backbone, image, sr_size, tiling=self.sr_tiling,
                               steps=self.settings.sr_steps, colour=self.settings.colour,
                               generator=seeds.generator("sr_noise"),
                               offsets=seeds.generator("offsets"))
            image = sr.image
            stage_two = StageTwo(sr_size, sr.denoiser_calls, sr.tile_evaluations, sr.tiles_per_step, {
                "backbone": self.backbone.name, "latent_size": list(sr.latent_size),
                "steps": self.settings.sr_steps,
                "sampler": getattr(self.backbone, "sampler", "DDPM (ancestral, trailing spacing)"),
                "colour_fix": self.settings.colour,
                "vae_tiling": self.settings.vae_tiling.effective(sr.latent_size),
                "tile_plan": {**self.sr_tiling.as_record(),
                              "tile_px": self.sr_tiling.tile * self.backbone.latent_factor,
                              "offsets": [list(o) for o in sr.offsets]}})

        # 3. the exact size
        working = tuple(image.shape[-2:])
        image, crop = centre_crop(image, size)
        return image, SampleRecord(size, stage_one, stage_two, Crop(working, crop))

    @property
    def input_factor(self) -> Optional[int]:
        """How much smaller an LR input is than the output (stage II alone): the backbone's factor."""
        return self.backbone.latent_factor if self.backbone else None

    def one_step(self) -> "AnySizePipeline":
        """The same pipeline at one step per stage (``--compile``'s warm-up at every size)."""
        return replace(self, settings=replace(self.settings, steps=1, sr_steps=1))

    @staticmethod
    def latent_size(size: tuple[int, int], vae) -> tuple[int, int]:
        return (size[0] // vae_factor(vae), size[1] // vae_factor(vae))

    def stage1_model(self) -> str:
        """Stage I's model in words: the base model's title, ARAD's where the LoRA is on it."""
        base = self.text_to_image.base
        if self.stages.base != "arad":
            return base.title
        return f"{base.title} (no ARAD LoRA: trained on aspect buckets)" if base.multi_aspect else "ARAD (SD 2.1 + LoRA)"

    def stage1_size(self, size: tuple[int, int]) -> tuple[tuple[int, int], str]:
        """Stage I's size and the rule that gave it (a bucket's rule names the base model's list)."""
        if self.stages.stage1 == "bucket":
            base = self.text_to_image.base
            return nearest_bucket(size, base.aspect_buckets), f"nearest bucket (Eq. 1) of {base.bucket_source}"
        factor = grid_factor(self.text_to_image)
        return working_size(size, factor), f"requested size, next multiple of {factor} px"

    def stage1_tiling(self) -> TilingConfig:
        """Stage I's tiling; MultiDiffusion's views and FSTD's tiles are the base model's native size."""
        models = self.text_to_image
        return self.settings.stage1_tiling(self.stages.stage1, min(models.base.native_size) // grid_factor(models))

    def describe(self) -> dict:
        """What produced the images: models, weights, backbone, LoRA, settings."""
        models = {}
        if self.text_to_image:
            models["stage1"] = self.text_to_image.describe()
        if self.backbone:
            models["stage2"] = self.backbone.describe()
        return {"method": self.method.name, "profile": self.profile,
                "backbone": self.backbone.name if self.backbone else None,
                "weights": models, "lora": self.lora, **({"lora_note": self.lora_note} if self.lora_note else {}),
                "steps": self.settings.steps if self.stages.base else None,
                "sr_steps": self.settings.sr_steps if self.stages.stage2 else None,
                "guidance": self.settings.guidance if self.stages.base else None,
                "colour_fix": self.settings.colour if self.stages.stage2 else None,
                "vae_tiling": self.settings.vae_tiling.as_record(),
                "stage1_tiling": self.stage1_tiling().as_record() if self.stages.base else None,
                "sr_tiling": self.sr_tiling.as_record() if self.sr_tiling else None,
                "fast_path": self.fast_path}


def apply_arad(models: TextToImageModels, profile: str, lora: Optional[str]) -> dict:
    """Turn SD 2.1 into ARAD: the LoRA given (ours, or another tool's: an external LoRA), else the tiny
    profile's (trained and cached), else (paper-arch) an untrained one."""
    from baselines.arad import TrainConfig, add_lora, tiny_arad_lora
    from baselines.lora import is_arad_lora, load_arad_lora, load_external_lora

    if lora is None and get_profile(profile).trains_lora:
        lora = tiny_arad_lora(models, asd_cache_dir())
    if lora is None:
        config = TrainConfig()
        add_lora(models.unet, config)
        return {"path": None, "rank": config.rank,
                "note": "untrained adapter (LoRA B = 0): ARAD's cost without trained weights"}
    if not is_arad_lora(lora):
        return load_external_lora(models.unet, lora, text_encoder=models.text_encoder, base_name=models.name)
    info = load_arad_lora(models.unet, lora, base_name=models.name)
    return {"path": str(info.path), "rank": info.rank, "base": info.base.get("name"),
            "trained_buckets": info.buckets, "data": info.metadata.get("data")}


def load_pipeline(method: Method, stages: Stages, profile: str, settings: Settings, device: torch.device,
                  paths: WeightPaths = WeightPaths(), model: str = DEFAULT_MODEL) -> AnySizePipeline:
    """Load what ``stages`` need on ``profile`` with stage I on base ``model``; on ``paper``, every missing
    weight is reported at once.

    The fast path is resolved for ``device`` and applied once the models and the LoRA are loaded."""
    backbone_name = stage2_backbone(settings.backbone, profile, paths) if stages.stage2 else None
    if get_profile(profile).published:
        resolve_paper_weights(backbone_needs(paper_needs(stages.needs, model), backbone_name), paths, model)
    fast = settings.fast_path.resolve(device, get_base_model(model).half_dtype)
    dtype = fast.torch_dtype
    settings = settings.for_device(device)
    text_to_image = load_text_to_image(profile, device, dtype, paths, model) if stages.base else None
    lora, lora_note = None, arad_unneeded(text_to_image, stages, paths)
    if stages.base == "arad" and lora_note is None:
        lora = apply_arad(text_to_image, profile, paths.lora)
    backbone = load_backbone(backbone_name, profile, settings, device, dtype, paths) if stages.stage2 else None
    sr_tiling = settings.sr_tiling(stages.stage2, backbone.latent_factor) if backbone else None
    fast.apply([m.unet for m in (text_to_image, backbone and backbone.models) if m],
               [m.vae for m in (text_to_image, backbone and backbone.models) if m])
    return AnySizePipeline(method, stages, profile, settings, text_to_image, backbone, sr_tiling, lora,
                           fast.as_record(device, settings.fast_path), lora_note)


def arad_unneeded(models: Optional[TextToImageModels], stages: Stages, paths: WeightPaths) -> Optional[str]:
    """Why an ARAD method's stage I takes no LoRA on this base model (None: it takes one): a model trained on
    its aspect buckets already makes them; a LoRA given for it is refused rather than ignored."""
    if stages.base != "arad" or not models.base.multi_aspect:
        return None
    if paths.lora:
        raise ValueError(f"{models.base.title} was trained on aspect buckets, so ARAD's stage I runs it without a "
                         "LoRA; drop --lora")
    return f"none: {models.base.title} was trained on its aspect buckets ({models.base.bucket_source})"


def stage2_backbone(given: Optional[str], profile: str, paths: WeightPaths) -> str:
    """The backbone asked for; unset, StableSR on ``paper`` when both its files are found (the paper's), else x4."""
    if given is not None:
        return given
    if get_profile(profile).published and all(locate_piece(piece, paths).present for piece in STABLESR_FILES):
        return "stablesr"
    return "x4"


def backbone_needs(needs: tuple[str, ...], backbone: Optional[str]) -> tuple[str, ...]:
    """A method's paper weights with stage II's on ``backbone``: StableSR's two files instead of the x4 upscaler."""
    if backbone != "stablesr":
        return needs
    return tuple(piece for piece in needs if piece != "upscaler") + tuple(STABLESR_FILES)


def load_backbone(name: str, profile: str, settings: Settings, device: torch.device, dtype: torch.dtype,
                  paths: WeightPaths) -> SRBackbone:
    if name == "x4":
        return X4UpscalerBackbone(load_upscaler(profile, device, dtype, paths), settings.vae_tiling)
    if get_profile(profile).published:
        resolve_paper_weights(STABLESR_FILES, paths)  # one error naming both files if either is missing
        models = released_models({"stablesr": Path(paths.stablesr), "cfw": Path(paths.stablesr_vae)}, device, dtype)
    else:
        models = random_models(profile, device, dtype)
    return StableSRBackbone(models, settings.cfw_weight, settings.vae_tiling)
