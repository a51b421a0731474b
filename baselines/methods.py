"""The compared methods by name (paper Table 1, MultiDiffusion, stage II alone), composed from the stages.

| method | stage I | stage II |
|---|---|---|
| ``sr-plus`` | SD 2.1 at the requested size | – |
| ``sr-tile`` | SD 2.1 at the nearest ARAD bucket (Eq. 1) | tiled SR, no overlap |
| ``sr-tile-plus`` | SD 2.1 at the nearest ARAD bucket | FSTD (implicit overlap) |
| ``ar-plus`` | ARAD at the requested size | – |
| ``ar-tile`` | ARAD at the nearest ARAD bucket | tiled SR, no overlap |
| ``asd`` | ARAD at the nearest ARAD bucket | FSTD (implicit overlap) |
| ``md`` | MultiDiffusion on SD 2.1 at the requested size | – |
| ``fstd`` | – (a low-resolution input) | tiled SR, any strategy (FSTD by default) |

Every method takes any size from 64 px: a stage works at the next multiple of what its
model needs (8 px for SD's VAE, the SR factor for stage II) and the result is centre-cropped
to the exact size; each sample's record says so. From a bucket to the target, stage II's
bicubic upscale also covers ratios that are not integral (our choice, SPEC §2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import torch

from baselines.fast_path import FastPath, default_tile_batch_size
from baselines.models import (STABLESR_FILES, TOKENIZER_NAME, TextToImageModels, WeightPaths, asd_cache_dir,
                              load_text_to_image, load_upscaler, locate_piece, resolve_paper_weights)
from baselines.stage1 import DEFAULT_GUIDANCE, UNTILED, generate, multidiffusion_tiling
from baselines.vae_tiling import VaeTiling, vae_factor
from baselines.stage2 import COLOUR_FIXES, SRBackbone, X4UpscalerBackbone, paper_tiling, super_resolve
from baselines.stablesr.backbone import DEFAULT_CFW_WEIGHT, StableSRBackbone
from baselines.stablesr.loading import random_models, released_models
from baselines.tiling import TilingConfig
from datasets_build.sizes import ARAD_BUCKETS, nearest

MIN_SIDE = 64
#: Stage II's backbones: the SD x4 upscaler (diffusers) and StableSR (the paper's; baselines/stablesr).
BACKBONES = {"x4": "SD x4 upscaler", "stablesr": "StableSR"}
#: Stage I (DDIM) and stage II (DDPM) steps: the paper's, and a few for the tiny profile.
DEFAULT_STEPS = {"tiny": (4, 8), "paper-arch": (50, 200), "paper": (50, 200)}


@dataclass(frozen=True)
class Method:
    """One compared method: which stage I (model, size rule), which stage II tiling."""

    name: str
    summary: str
    base: Optional[str] = None  # stage I model: "sd21" or "arad"; None: no stage I
    stage1: str = "target"  # "target", "bucket" (Eq. 1) or "multidiffusion"
    stage2: Optional[str] = None  # stage II tiling strategy; "any": the caller's (fstd)

    @property
    def needs(self) -> tuple[str, ...]:
        """The weights the ``paper`` profile must find for this method."""
        wanted = {"sd21": self.base is not None, "lora": self.base == "arad", "upscaler": self.stage2 is not None}
        return tuple(piece for piece, needed in wanted.items() if needed)


METHODS = {m.name: m for m in (
    Method("fstd", "stage II alone: FSTD tiled super-resolution of low-resolution inputs "
                   "(--tiling chooses the strategy)", stage2="any"),
    Method("sr-plus", "SD 2.1 directly at the target size", "sd21"),
    Method("sr-tile", "SD 2.1 at the nearest bucket, then tiled SR without overlap", "sd21", "bucket",
           "nonoverlap"),
    Method("sr-tile-plus", "SD 2.1 at the nearest bucket, then FSTD (implicit overlap)", "sd21",
           "bucket", "implicit"),
    Method("ar-plus", "ARAD (SD 2.1 + LoRA) directly at the target size", "arad"),
    Method("ar-tile", "ARAD at the nearest bucket, then tiled SR without overlap", "arad", "bucket",
           "nonoverlap"),
    Method("asd", "Any-Size-Diffusion: ARAD at the nearest bucket, then FSTD", "arad", "bucket",
           "implicit"),
    Method("md", "MultiDiffusion on SD 2.1 at the target size (64-latent views, stride 8)", "sd21",
           "multidiffusion"),
)}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name]


def check_size(size: tuple[int, int]):
    if min(size) < MIN_SIDE:
        raise ValueError(f"size {size[0]}x{size[1]} is too small: each side must be at least {MIN_SIDE} px")


def working_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The next multiple of ``multiple`` up, per side."""
    return tuple(-(-side // multiple) * multiple for side in size)


def nearest_bucket(size: tuple[int, int]) -> tuple[int, int]:
    """The ARAD bucket whose ratio H/W is nearest (Eq. 1)."""
    bucket = ARAD_BUCKETS[int(nearest([size[0] / size[1]], ARAD_BUCKETS)[0])]
    return (bucket.height, bucket.width)


def centre_crop(image: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """``image`` cut to ``size`` around its centre, and the (top, left) of the cut."""
    top, left = (image.shape[-2] - size[0]) // 2, (image.shape[-1] - size[1]) // 2
    return image[..., top:top + size[0], left:left + size[1]], (top, left)


@dataclass(frozen=True)
class Settings:
    """How a method samples. ``sr_strategy`` is fstd's stage-II tiling (the other methods fix
    theirs); ``tiling`` overrides :class:`TilingConfig` fields, in the backbone's latent px;
    ``vae_tiling`` is how every VAE call of both stages is tiled; ``fast_path`` how the networks
    run (unset fields and an unset ``tiling["tile_batch_size"]`` take the device's default)."""

    steps: int
    sr_steps: int
    guidance: float = DEFAULT_GUIDANCE
    colour: str = "adain"
    sr_strategy: str = "implicit"
    tiling: dict = field(default_factory=dict)
    vae_tiling: VaeTiling = field(default_factory=VaeTiling)
    fast_path: FastPath = field(default_factory=FastPath)
    backbone: Optional[str] = None  # stage II: one of BACKBONES; None: StableSR on paper when its files are found, else x4
    cfw_weight: float = DEFAULT_CFW_WEIGHT  # StableSR's CFW w

    def __post_init__(self):
        if self.backbone is not None and self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.steps < 1 or self.sr_steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps} (stage I) and "
                             f"{self.sr_steps} (stage II)")
        if self.colour not in COLOUR_FIXES:
            raise ValueError(f"unknown colour fix {self.colour!r}; choose one of {', '.join(COLOUR_FIXES)}")

    def sr_tiling(self, method: Method, latent_factor: int) -> TilingConfig:
        """Stage II's tiling: the method's strategy at the paper's pixel sizes, then the overrides."""
        strategy = self.sr_strategy if method.stage2 == "any" else method.stage2
        return paper_tiling(strategy, latent_factor, **self.tiling)

    def stage1_tiling(self, method: Method) -> TilingConfig:
        if method.stage1 != "multidiffusion":
            return UNTILED
        return multidiffusion_tiling(self.tiling.get("tile_batch_size") or 1)


@dataclass(frozen=True)
class Seeds:
    """A sample's random streams: stage I noise, stage II noise, tile offsets (apart, so one never shifts another)."""

    noise: int
    sr_noise: int
    offsets: int

    def generator(self, stream: str) -> torch.Generator:
        return torch.Generator().manual_seed(getattr(self, stream))


@dataclass
class AnySizePipeline:
    """A method on loaded models: ``pipeline(prompt, size, seeds)`` gives an image of exactly ``size``."""

    method: Method
    profile: str
    settings: Settings
    text_to_image: Optional[TextToImageModels]
    backbone: Optional[SRBackbone]
    sr_tiling: Optional[TilingConfig] = None
    lora: Optional[dict] = None
    fast_path: Optional[dict] = None  # FastPath.as_record of the settings in force

    def __call__(self, prompt: str, size: tuple[int, int], seeds: Seeds,
                 source: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict]:
        """The image (1, 3, H, W) in [-1, 1] and the sample's record; ``source`` feeds stage II alone."""
        check_size(size)
        record = {"prompt": prompt, "size": list(size)}

        # 1. stage I: text to image, at the requested size or the nearest bucket
        if self.method.base:
            stage1_size, rule = self.stage1_size(size)
            tiling = self.settings.stage1_tiling(self.method)
            result = generate(self.text_to_image, prompt, stage1_size, steps=self.settings.steps,
                              guidance=self.settings.guidance, tiling=tiling,
                              generator=seeds.generator("noise"), vae_tiling=self.settings.vae_tiling)
            image = result.image
            record["stage1"] = {
                "model": "ARAD (SD 2.1 + LoRA)" if self.method.base == "arad" else "SD 2.1",
                "size": list(stage1_size), "size_rule": rule, "steps": self.settings.steps,
                "sampler": "DDIM (eta 0)", "guidance": self.settings.guidance,
                "unet_calls": result.unet_calls, "unet_rows_per_tile": 2 if self.settings.guidance > 1 else 1,
                "tile_evaluations": result.tile_evaluations, "tiling": tiling.as_record(),
                "vae_tiling": self.settings.vae_tiling.effective(self.latent_size(stage1_size, self.text_to_image.vae))}
        else:
            image = source

        # 2. stage II: tiled super-resolution to the target
        if self.method.stage2:
            sr_size = working_size(size, self.backbone.latent_factor)
            sr = super_resolve(self.backbone, image, sr_size, tiling=self.sr_tiling,
                               steps=self.settings.sr_steps, colour=self.settings.colour,
                               generator=seeds.generator("sr_noise"),
                               offsets=seeds.generator("offsets"))
            image = sr.image
            record["stage2"] = {
                "backbone": self.backbone.name, "size": list(sr_size), "latent_size": list(sr.latent_size),
                "steps": self.settings.sr_steps,
                "sampler": getattr(self.backbone, "sampler", "DDPM (ancestral, trailing spacing)"),
                "colour_fix": self.settings.colour, "denoiser_calls": sr.denoiser_calls,
                "vae_tiling": self.settings.vae_tiling.effective(sr.latent_size),
                "tile_evaluations": sr.tile_evaluations,
                "tile_plan": {**self.sr_tiling.as_record(), "tiles_per_step": sr.tiles_per_step,
                              "tile_px": self.sr_tiling.tile * self.backbone.latent_factor,
                              "offsets": [list(o) for o in sr.offsets]}}

        # 3. the exact size
        working = tuple(image.shape[-2:])
        image, crop = centre_crop(image, size)
        record["output"] = {"working_size": list(working), "cropped": working != tuple(size),
                            "crop_top_left": list(crop)}
        return image, record

    @staticmethod
    def latent_size(size: tuple[int, int], vae) -> tuple[int, int]:
        return (size[0] // vae_factor(vae), size[1] // vae_factor(vae))

    def stage1_size(self, size: tuple[int, int]) -> tuple[tuple[int, int], str]:
        """Stage I's size and the rule that gave it."""
        if self.method.stage1 == "bucket":
            return nearest_bucket(size), "nearest ARAD bucket (Eq. 1)"
        factor = vae_factor(self.text_to_image.vae)
        return working_size(size, factor), f"requested size, next multiple of {factor} px"

    def describe(self) -> dict:
        """What produced the images: models, weights, backbone, LoRA, settings."""
        models = {}
        if self.text_to_image:
            models["stage1"] = {"model": self.text_to_image.name, "weights": self.text_to_image.weights,
                                "tokenizer": TOKENIZER_NAME,
                                "dtype": str(self.text_to_image.unet.dtype),
                                "vae_dtype": str(self.text_to_image.vae.dtype)}
        if self.backbone:
            upscaler = self.backbone.models
            models["stage2"] = {"model": upscaler.name, "weights": upscaler.weights,
                                "noise_level": upscaler.noise_level, "dtype": str(upscaler.unet.dtype),
                                "vae_dtype": str(upscaler.vae.dtype),
                                "vae_dtype_rule": "fp32 where the VAE config says force_upcast (x4: it "
                                                  "overflows in fp16), else the model dtype",
                                "latent_factor": self.backbone.latent_factor,
                                **(self.backbone.describe() if hasattr(self.backbone, "describe") else {})}
        return {"method": self.method.name, "profile": self.profile,
                "backbone": self.backbone.name if self.backbone else None,
                "weights": models, "lora": self.lora,
                "steps": self.settings.steps if self.method.base else None,
                "sr_steps": self.settings.sr_steps if self.method.stage2 else None,
                "guidance": self.settings.guidance if self.method.base else None,
                "colour_fix": self.settings.colour if self.method.stage2 else None,
                "vae_tiling": self.settings.vae_tiling.as_record(),
                "stage1_tiling": self.settings.stage1_tiling(self.method).as_record() if self.method.base else None,
                "sr_tiling": self.sr_tiling.as_record() if self.sr_tiling else None,
                "fast_path": self.fast_path}


def apply_arad(models: TextToImageModels, profile: str, lora: Optional[str]) -> dict:
    """Turn SD 2.1 into ARAD: the LoRA given, else the tiny profile's (trained and cached), else (paper-arch) an untrained one."""
    from baselines.arad import TrainConfig, add_lora, tiny_arad_lora
    from baselines.lora import load_arad_lora

    if lora is None and profile == "tiny":
        lora = tiny_arad_lora(models, asd_cache_dir())
    if lora is None:
        config = TrainConfig()
        add_lora(models.unet, config)
        return {"path": None, "rank": config.rank,
                "note": "untrained adapter (LoRA B = 0): ARAD's cost without trained weights"}
    info = load_arad_lora(models.unet, lora, base_name=models.name)
    return {"path": str(info.path), "rank": info.rank, "base": info.base.get("name"),
            "trained_buckets": info.buckets, "data": info.metadata.get("data")}


def load_pipeline(method: Method, profile: str, settings: Settings, device: torch.device,
                  paths: WeightPaths = WeightPaths()) -> AnySizePipeline:
    """Load what ``method`` needs on ``profile``; on ``paper``, every missing weight is reported at once.

    The fast path is resolved for ``device`` and applied once the models and the LoRA are loaded."""
    backbone_name = stage2_backbone(settings.backbone, profile, paths) if method.stage2 else None
    if profile == "paper":
        resolve_paper_weights(backbone_needs(method.needs, backbone_name), paths)
    fast = settings.fast_path.resolve(device)
    dtype = fast.torch_dtype
    if settings.tiling.get("tile_batch_size") is None:
        settings = replace(settings, tiling={**settings.tiling, "tile_batch_size": default_tile_batch_size(device)})
    text_to_image = load_text_to_image(profile, device, dtype, paths) if method.base else None
    lora = apply_arad(text_to_image, profile, paths.lora) if method.base == "arad" else None
    backbone = load_backbone(backbone_name, profile, settings, device, dtype, paths) if method.stage2 else None
    sr_tiling = settings.sr_tiling(method, backbone.latent_factor) if backbone else None
    fast.apply([m.unet for m in (text_to_image, backbone and backbone.models) if m],
               [m.vae for m in (text_to_image, backbone and backbone.models) if m])
    return AnySizePipeline(method, profile, settings, text_to_image, backbone, sr_tiling, lora,
                           fast.as_record(device, settings.fast_path))


def stage2_backbone(given: Optional[str], profile: str, paths: WeightPaths) -> str:
    """The backbone asked for; unset, StableSR on ``paper`` when both its files are found (the paper's), else x4."""
    if given is not None:
        return given
    if profile == "paper" and all(locate_piece(piece, paths).present for piece in STABLESR_FILES):
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
    if profile == "paper":
        resolve_paper_weights(STABLESR_FILES, paths)  # one error naming both files if either is missing
        models = released_models({"stablesr": Path(paths.stablesr), "cfw": Path(paths.stablesr_vae)}, device, dtype)
    else:
        models = random_models(profile, device, dtype)
    return StableSRBackbone(models, settings.cfw_weight, settings.vae_tiling)
