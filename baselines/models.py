"""The models of the three profiles, in one place: ``tiny``, ``paper-arch`` and ``paper``.

Every method runs on two model sets: a text-to-image set for stage I (a registered base model,
:mod:`baselines.base_models`: SD 2.1-base, the paper's and the default, or SDXL base 1.0; UNet, VAE
×8, text encoder(s)) and an image-conditioned super-resolution set for stage II (the SD x4 upscaler: UNet on the
latent concatenated with the noised low-resolution image, VAE ×4). A profile (:mod:`baselines.profiles`) says where
their weights come from:

- ``tiny``: small configs of the same architectures, fixed-seed random weights; seconds on a
  CPU. For testing the machinery, not for image quality.
- ``paper-arch``: the published architectures with fixed-seed random weights, the configs
  written out below (nothing is downloaded); built on the ``meta`` device for counting,
  on the real device for timing.
- ``paper``: the published weights, from local folders or a warm Hugging Face cache (under the
  original repo ids or community mirrors; the default files or only their fp16 variant), never
  downloaded (``local_files_only``). Whatever is missing is reported in one error; where each piece
  is looked for is :mod:`baselines.paper_weights`'s, for every registered base model alike.

Text is tokenised by open_clip's BPE tokenizer, whose vocabulary ships in its wheel: its
ids are CLIP's, which every text encoder here uses (OpenCLIP ViT-H/14 of SD 2.1 and the x4
upscaler, pad id 0 = "!" as in SD 2's tokenizer; SDXL's two, each padded as its own tokenizer
pads), so no tokenizer files are needed in any profile.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from open_clip.tokenizer import SimpleTokenizer
from transformers import AutoTokenizer, CLIPTextModel

from baselines.base_models import DEFAULT_MODEL, BaseModel, Conditioning, get_base_model
from baselines.base_models.sd21 import SD21, TINY_VAE
from baselines.fast_path import FastPath
from baselines.paper_weights import BASE, UPSCALER_REPO, ModelPiece, WeightPaths, resolve_paper_pieces, variant_of
from baselines.profiles import get_profile, random_architecture

WEIGHT_SEED = 0  # random weights of tiny and paper-arch

CACHE_VARIABLE = "ASD_BENCH_CACHE"  # where tiny LoRAs are cached

# --- the x4 upscaler's published configurations (diffusers' keys; stage I's are its base model's) ---

UPSCALER_UNET = dict(
    sample_size=128, in_channels=7, out_channels=4, layers_per_block=2,
    block_out_channels=(256, 512, 512, 1024),
    down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
    up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",),
    cross_attention_dim=1024, attention_head_dim=8, use_linear_projection=True,
    num_class_embeds=1000, only_cross_attention=(True, True, True, False))
UPSCALER_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    block_out_channels=(128, 256, 512),
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    sample_size=256, scaling_factor=0.08333)
#: The x4 upscaler is v-prediction; LDM's "linear" schedule is diffusers' scaled_linear.
UPSCALER_SCHEDULER = dict(
    num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02,
    prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
UPSCALER_LOW_RES_SCHEDULER = dict(
    num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02)
UPSCALER_NOISE_LEVEL = 20  # StableDiffusionUpscalePipeline's default

# --- the tiny configurations: same block types, few channels -----------------------------------

#: The x4 upscaler's stand-in keeps the smaller layout: its published layout is not SD 2.1's anyway.
TINY_SR_UNET = dict(
    sample_size=32, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=(16, 32, 64), norm_num_groups=8,
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    cross_attention_dim=32, attention_head_dim=4, use_linear_projection=True)
TINY_UPSCALER_UNET = dict(TINY_SR_UNET, in_channels=7, num_class_embeds=1000,
                          only_cross_attention=(True, True, True))
TINY_UPSCALER_VAE = dict(TINY_VAE, block_out_channels=(4, 4, 8),
                         down_block_types=("DownEncoderBlock2D",) * 3,
                         up_block_types=("UpDecoderBlock2D",) * 3, scaling_factor=0.08333)



@dataclass
class TextToImageModels:
    """Stage I: a base model (SD 2.1 unless ``base_model`` says otherwise), loaded, and where its weights
    came from. ``unet`` is its denoising network (FLUX: its transformer, which diffusers calls ``transformer``);
    ``text_encoder_2`` its second encoder (SDXL's bigG, FLUX's T5; diffusers' name), None for a model with one;
    ``file_tokenizers`` the tokenizers read from a published folder (FLUX's T5), by the encoder subfolder they
    feed (empty: every encoder's ids are open_clip's BPE, or a random-weight profile's stand-in)."""

    unet: torch.nn.Module
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: SimpleTokenizer
    scheduler_config: dict
    name: str
    weights: str
    repo: Optional[str] = None  # the hub repo id loaded (None: a folder given, or random weights)
    variant: Optional[str] = None  # the weight files loaded: "fp32" (the default files) or "fp16"
    text_encoder_2: Optional[torch.nn.Module] = None
    base_model: str = DEFAULT_MODEL  # the registered entry (baselines.base_models) these models are
    file_tokenizers: Mapping[str, object] = field(default_factory=dict)

    @property
    def base(self) -> BaseModel:
        return get_base_model(self.base_model)

    def describe(self) -> dict:
        """Which model and weights, from where, in which precision (``run.json``'s ``weights.stage1``)."""
        return {"model": self.name, "weights": self.weights, "repo": self.repo, "variant": self.variant,
                "tokenizer": self.base.tokenizer,
                "dtype": str(self.unet.dtype), "vae_dtype": str(self.vae.dtype)}

    @torch.no_grad()
    def condition(self, prompts: list[str], size: tuple[int, int]) -> Conditioning:
        """What the UNet is called with for ``prompts`` and an image of ``size``, as the base model says."""
        return self.base.condition(self, list(prompts), tuple(size))

    def guidance_pair(self, prompt: str, size: tuple[int, int]) -> tuple[Conditioning, Conditioning]:
        """The unconditional and the prompt's conditioning for classifier-free guidance: the empty prompt's
        encoding (SD 2.1: encoded in one batch with the prompt), or what the model's ``unconditional`` makes
        (SDXL: zeros)."""
        if self.base.unconditional is None:
            return self.condition(["", prompt], size).chunk(2)
        positive = self.condition([prompt], size)
        return self.base.unconditional(positive), positive

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """The encoder hidden states alone (what methods written for SD 2.1 only pass to the UNet)."""
        return self.condition(prompts, self.base.native_size).hidden


@dataclass
class UpscalerModels:
    """Stage II: the x4 upscaler (or its stand-in), its empty-prompt embedding, its source."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    prompt_embedding: torch.Tensor  # the empty prompt: stage II has no text (docs/design.md, "Stage II")
    scheduler_config: dict
    low_res_scheduler_config: dict
    noise_level: int
    name: str
    weights: str
    repo: Optional[str] = None  # as TextToImageModels
    variant: Optional[str] = None


def default_dtype(device: torch.device) -> torch.dtype:
    """The fast path's default: fp16 on CUDA (as the authors run), fp32 elsewhere."""
    return FastPath().resolve(device).torch_dtype


def asd_cache_dir() -> Path:
    """Where generated artefacts (tiny LoRAs) are cached: ``$ASD_BENCH_CACHE`` or ~/.cache/asd-bench."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "asd-bench")


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@contextmanager
def _seeded(seed: int):
    """Random initialisation that depends on ``seed`` only, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


#: The x4 upscaler's configs of each architecture a profile builds random weights from.
_UPSCALER = {"tiny": (TINY_UPSCALER_UNET, TINY_UPSCALER_VAE), "paper-arch": (UPSCALER_UNET, UPSCALER_VAE)}


def meta_models(profile: str = "paper-arch", model: str = DEFAULT_MODEL) -> dict[str, torch.nn.Module]:
    """Every model of a random-weight profile (stage I's of base ``model``, and the x4 upscaler's) on the
    ``meta`` device: shapes without memory."""
    architecture = random_architecture(profile)
    base = get_base_model(model)
    with torch.device("meta"):
        return {"unet": base.network(**base.networks[architecture]),
                "vae": AutoencoderKL(**base.vaes[architecture]),
                **{encoder.subfolder: encoder.build(architecture) for encoder in base.text_encoders},
                "upscaler_unet": UNet2DConditionModel(**_UPSCALER[architecture][0]),
                "upscaler_vae": AutoencoderKL(**_UPSCALER[architecture][1])}


def _ready(module: torch.nn.Module, device: torch.device, dtype: torch.dtype):
    """On the device, in the dtype, for inference (the dtype cast only when it changes something)."""
    module = module.to(device)
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype)
    return module.eval().requires_grad_(False)


def _random_text_encoders(base: BaseModel, architecture: str, device, dtype) -> dict[str, torch.nn.Module]:
    """Each text encoder of ``base`` with random weights, by subfolder (seeds ``base.seed`` + 2, + 3, ...)."""
    encoders = {}
    for number, encoder in enumerate(base.text_encoders):
        with _seeded(base.seed + 2 + number):
            encoders[encoder.subfolder] = _ready(encoder.build(architecture), device, dtype)
    return encoders


def _random_weights(profile: str, seed: int = WEIGHT_SEED) -> str:
    return f"random (seed {seed}, {profile} configs)"


def load_text_to_image(profile: str, device: torch.device, dtype: Optional[torch.dtype] = None,
                       paths: WeightPaths = WeightPaths(), model: str = DEFAULT_MODEL) -> TextToImageModels:
    """Stage I's models of base ``model`` (a registered name) on ``profile`` and ``device``."""
    dtype = dtype or default_dtype(device)
    base = get_base_model(model)
    if get_profile(profile, models=True).published:
        piece = resolve_paper_pieces((BASE,), paths, base.name)[BASE]
        encoders = {encoder.subfolder: _pretrained(encoder.cls, piece, encoder.subfolder, device, dtype)
                    for encoder in base.text_encoders}
        vae_note = f" (VAE: {piece.vae_folder})" if piece.vae_folder else ""
        tokenizers = {encoder.subfolder: AutoTokenizer.from_pretrained(piece.folder / encoder.tokenizer,
                                                                       local_files_only=True)
                      for encoder in base.text_encoders if encoder.tokenizer}
        return TextToImageModels(
            unet=_pretrained(base.network, piece, base.network_subfolder, device, dtype),
            vae=_stage1_vae(base, _pretrained(AutoencoderKL, piece, "vae", device, dtype), device, dtype),
            tokenizer=SimpleTokenizer(),
            scheduler_config=_scheduler_config(piece.folder, "scheduler"),
            name=piece.repo or next(iter(base.repos), base.name), weights=f"{piece.folder}{vae_note}",
            repo=piece.repo, variant=piece.variant, base_model=base.name, file_tokenizers=tokenizers, **encoders)
    architecture = random_architecture(profile)
    with _seeded(base.seed):
        unet = _ready(base.network(**base.networks[architecture]), device, dtype)
    vae = random_stage1_vae(base, profile, device, dtype)
    return TextToImageModels(unet=unet, vae=vae, tokenizer=SimpleTokenizer(), scheduler_config=dict(base.scheduler),
                             name=f"{profile}/{base.name}", weights=_random_weights(profile, base.seed),
                             base_model=base.name, **_random_text_encoders(base, architecture, device, dtype))


def load_upscaler(profile: str, device: torch.device, dtype: Optional[torch.dtype] = None,
                  paths: WeightPaths = WeightPaths()) -> UpscalerModels:
    """Stage II's models of ``profile`` on ``device``; the empty prompt is encoded here, once."""
    dtype = dtype or default_dtype(device)
    tokens = SimpleTokenizer()([""]).to(device)
    if get_profile(profile, models=True).published:
        piece = resolve_paper_pieces(("upscaler",), paths)["upscaler"]
        folder = piece.folder
        text_encoder = _pretrained(CLIPTextModel, piece, "text_encoder", device, dtype)
        with torch.no_grad():
            embedding = text_encoder(tokens).last_hidden_state
        vae = _pretrained(AutoencoderKL, piece, "vae", device, torch.float32)
        return UpscalerModels(
            unet=_pretrained(UNet2DConditionModel, piece, "unet", device, dtype),
            vae=_ready(vae, device, _vae_dtype(vae, dtype)),
            prompt_embedding=embedding,
            scheduler_config=_scheduler_config(folder, "scheduler"),
            low_res_scheduler_config=_scheduler_config(folder, "low_res_scheduler"),
            noise_level=UPSCALER_NOISE_LEVEL, name=piece.repo or UPSCALER_REPO, weights=str(folder),
            repo=piece.repo, variant=piece.variant)
    architecture = random_architecture(profile)
    with _seeded(WEIGHT_SEED + 3):
        unet = _ready(UNet2DConditionModel(**_UPSCALER[architecture][0]), device, dtype)
    with _seeded(WEIGHT_SEED + 4):
        vae = AutoencoderKL(**_UPSCALER[architecture][1])
    vae = _ready(vae, device, _vae_dtype(vae, dtype))
    with torch.no_grad():  # the upscaler's text encoder is SD 2.1's (OpenCLIP ViT-H/14)
        embedding = _random_text_encoders(SD21, architecture, device, dtype)["text_encoder"](tokens).last_hidden_state
    return UpscalerModels(unet, vae, embedding, dict(UPSCALER_SCHEDULER), dict(UPSCALER_LOW_RES_SCHEDULER),
                          UPSCALER_NOISE_LEVEL, name=f"{profile}/x4-upscaler", weights=_random_weights(profile))


def random_stage1_vae(base: BaseModel, profile: str, device: torch.device, dtype: torch.dtype) -> AutoencoderKL:
    """Stage I's VAE of a random-weight profile as a run loads it: the base model's seed + 1, its dtype rule."""
    with _seeded(base.seed + 1):
        return _stage1_vae(base, AutoencoderKL(**base.vaes[random_architecture(profile)]), device, dtype)


def _stage1_vae(base: BaseModel, vae: AutoencoderKL, device: torch.device, dtype: torch.dtype) -> AutoencoderKL:
    """Stage I's VAE in the run's dtype, or in fp32 where the base model's pipeline upcasts it (``vae_upcast``: SDXL,
    unless the VAE given is one whose config says it need not, such as the fp16-fix VAE)."""
    return _ready(vae, device, _vae_dtype(vae, dtype) if base.vae_upcast else dtype)


def _vae_dtype(vae: AutoencoderKL, dtype: torch.dtype) -> torch.dtype:
    """The upscaler's VAE overflows in fp16: fp32 where its config says ``force_upcast``, as the pipeline does."""
    return torch.float32 if vae.config.force_upcast else dtype


def _pretrained(cls, piece: ModelPiece, subfolder: str, device: torch.device, dtype: torch.dtype):
    """One model of a located piece; ``variant="fp16"`` only where its folder holds no default files,
    as ``from_pretrained(..., variant="fp16")`` downloads them (the fp16 weights are cast to ``dtype``)."""
    folder, sub = piece.location(subfolder)
    variant = "fp16" if variant_of(folder / (sub or "")) == "fp16" else None
    return _ready(cls.from_pretrained(folder, subfolder=sub, torch_dtype=dtype, local_files_only=True,
                                      variant=variant), device, dtype)


def _scheduler_config(folder: Path, subfolder: str) -> dict:
    from diffusers import DDIMScheduler

    return dict(DDIMScheduler.load_config(folder, subfolder=subfolder, local_files_only=True))
