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
  downloaded (``local_files_only``). Whatever is missing is reported in one error.

Text is tokenised by open_clip's BPE tokenizer, whose vocabulary ships in its wheel: its
ids are CLIP's, which every text encoder here uses (OpenCLIP ViT-H/14 of SD 2.1 and the x4
upscaler, pad id 0 = "!" as in SD 2's tokenizer; SDXL's two, each padded as its own tokenizer
pads), so no tokenizer files are needed in any profile.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from open_clip.tokenizer import SimpleTokenizer
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from baselines.base_models import DEFAULT_MODEL, BaseModel, Conditioning, get_base_model
from baselines.base_models.sd21 import (OPENCLIP_H14_TEXT, SD21, SD21_REPO, SD21_REPOS, SD21_SCHEDULER,  # noqa: F401
                                        SD21_UNET, SD21_VAE, TINY_TEXT, TINY_UNET, TINY_VAE)
from baselines.fast_path import FastPath
from baselines.profiles import get_profile, profiles, random_architecture

WEIGHT_SEED = 0  # random weights of tiny and paper-arch

UPSCALER_REPO = "stabilityai/stable-diffusion-x4-upscaler"
#: Where the hub cache may hold the upscaler, tried in this order: the original id first (withdrawn with the
#: SD 2 family, see baselines.base_models.sd21), then the community mirrors known as of 2026-12. A new mirror
#: goes at the end of its tuple; a user can name one without editing code through REPO_VARIABLES, tried first.
UPSCALER_REPOS = (UPSCALER_REPO, "sd2-community/stable-diffusion-x4-upscaler")
REPO_VARIABLES = {"sd21": "ASD_SD21_REPO", "upscaler": "ASD_X4_UPSCALER_REPO"}
PATH_VARIABLES = {"sd21": "ASD_SD21", "upscaler": "ASD_X4_UPSCALER", "lora": "ASD_ARAD_LORA",
                  "stablesr": "ASD_STABLESR", "stablesr_vae": "ASD_STABLESR_VAE"}
#: StableSR's two released files (baselines/stablesr), each one file, given by path only.
STABLESR_FILES = {"stablesr": ("StableSR (stablesr_000117.ckpt)", "--stablesr-ckpt"),
                  "stablesr_vae": ("StableSR CFW VAE (vqgan_cfw_00011.ckpt)", "--stablesr-vae")}
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



class MissingWeightsError(FileNotFoundError):
    """The ``paper`` profile lacks weights; the message lists each missing piece and where."""


@dataclass
class TextToImageModels:
    """Stage I: a base model (SD 2.1 unless ``base_model`` says otherwise), loaded, and where its weights
    came from. ``text_encoder_2`` is SDXL's second encoder (diffusers' name), None for a model with one."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: SimpleTokenizer
    scheduler_config: dict
    name: str
    weights: str
    repo: Optional[str] = None  # the hub repo id loaded (None: a folder given, or random weights)
    variant: Optional[str] = None  # the weight files loaded: "fp32" (the default files) or "fp16"
    text_encoder_2: Optional[CLIPTextModelWithProjection] = None
    base_model: str = DEFAULT_MODEL  # the registered entry (baselines.base_models) these models are

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


@dataclass(frozen=True)
class WeightPaths:
    """Where the ``paper`` profile looks: folders (or None: the Hugging Face cache)."""

    sd21: Optional[str] = None
    upscaler: Optional[str] = None
    lora: Optional[str] = None
    stablesr: Optional[str] = None  # files, not folders
    stablesr_vae: Optional[str] = None

    @classmethod
    def from_environment(cls, **given: Optional[str]) -> "WeightPaths":
        """Paths given explicitly (CLI options) win over ``ASD_SD21``, ``ASD_X4_UPSCALER``, ``ASD_ARAD_LORA``."""
        return cls(**{key: given.get(key) or os.environ.get(variable) or None
                      for key, variable in PATH_VARIABLES.items()})


def default_dtype(device: torch.device) -> torch.dtype:
    """The fast path's default: fp16 on CUDA (as the authors run), fp32 elsewhere."""
    return FastPath().resolve(device).torch_dtype


def asd_cache_dir() -> Path:
    """Where generated artefacts (tiny LoRAs) are cached: ``$ASD_BENCH_CACHE`` or ~/.cache/asd-bench."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "asd-bench")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


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
        return {"unet": UNet2DConditionModel(**base.unets[architecture]),
                "vae": AutoencoderKL(**base.vaes[architecture]),
                **{encoder.subfolder: encoder.cls(CLIPTextConfig(**encoder.configs[architecture]))
                   for encoder in base.text_encoders},
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
            config = CLIPTextConfig(**encoder.configs[architecture])
            encoders[encoder.subfolder] = _ready(encoder.cls(config), device, dtype)
    return encoders


def _random_weights(profile: str, seed: int = WEIGHT_SEED) -> str:
    return f"random (seed {seed}, {profile} configs)"


def check_paper_model(model: str):
    """Refuse a base model whose published weights the ``paper`` profile cannot locate yet (SDXL: issue 25)."""
    if model not in _PIECES:
        building = [name for name, profile in profiles().items() if profile.architecture and not profile.published]
        raise ValueError(f"the paper profile does not load {get_base_model(model).title} weights yet; run --model "
                         f"{model} on {' or '.join(building)}")


def load_text_to_image(profile: str, device: torch.device, dtype: Optional[torch.dtype] = None,
                       paths: WeightPaths = WeightPaths(), model: str = DEFAULT_MODEL) -> TextToImageModels:
    """Stage I's models of base ``model`` (a registered name) on ``profile`` and ``device``."""
    dtype = dtype or default_dtype(device)
    base = get_base_model(model)
    if get_profile(profile, models=True).published:
        check_paper_model(model)
        piece = resolve_paper_pieces((base.name,), paths)[base.name]
        folder = piece.folder
        encoders = {encoder.subfolder: _pretrained(encoder.cls, piece, encoder.subfolder, device, dtype)
                    for encoder in base.text_encoders}
        return TextToImageModels(
            unet=_pretrained(UNet2DConditionModel, piece, "unet", device, dtype),
            vae=_pretrained(AutoencoderKL, piece, "vae", device, dtype), tokenizer=SimpleTokenizer(),
            scheduler_config=_scheduler_config(folder, "scheduler"), name=piece.repo or base.repos[0],
            weights=str(folder), repo=piece.repo, variant=piece.variant, base_model=base.name, **encoders)
    architecture = random_architecture(profile)
    with _seeded(base.seed):
        unet = _ready(UNet2DConditionModel(**base.unets[architecture]), device, dtype)
    with _seeded(base.seed + 1):
        vae = _ready(AutoencoderKL(**base.vaes[architecture]), device, dtype)
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


def _vae_dtype(vae: AutoencoderKL, dtype: torch.dtype) -> torch.dtype:
    """The upscaler's VAE overflows in fp16: fp32 where its config says ``force_upcast``, as the pipeline does."""
    return torch.float32 if vae.config.force_upcast else dtype


def _pretrained(cls, piece: "ModelPiece", subfolder: str, device: torch.device, dtype: torch.dtype):
    """One model of a located piece; ``variant="fp16"`` only where the subfolder holds no default files,
    as ``from_pretrained(..., variant="fp16")`` downloads them (the fp16 weights are cast to ``dtype``)."""
    variant = "fp16" if _variant(piece.folder / subfolder) == "fp16" else None
    return _ready(cls.from_pretrained(piece.folder, subfolder=subfolder, torch_dtype=dtype, local_files_only=True,
                                      variant=variant), device, dtype)


def _scheduler_config(folder: Path, subfolder: str) -> dict:
    from diffusers import DDIMScheduler

    return dict(DDIMScheduler.load_config(folder, subfolder=subfolder, local_files_only=True))


# --- the paper profile: finding weights offline ---------------------------------------------

#: What each piece needs: subfolders with a config, and whether they hold weights.
_PIECES = {
    "sd21": ("SD 2.1-base", SD21_REPO, SD21.layout),
    "upscaler": ("SD x4 upscaler", UPSCALER_REPO, {
        "unet": "config.json", "vae": "config.json", "text_encoder": "config.json",
        "scheduler": "scheduler_config.json", "low_res_scheduler": "scheduler_config.json"}),
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: The default weight files of a diffusers / transformers model folder, with their fp16 variant.
_WEIGHT_NAMES = "diffusion_pytorch_model.safetensors, model.safetensors or their .fp16. variants"


def _weight_files(folder: Path) -> list[Path]:
    """The weight files of one model folder: whole files, or sharded ones with their index."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix in _WEIGHT_SUFFIXES or (p.suffix == ".json" and ".index." in p.name))


def _variant(folder: Path) -> Optional[str]:
    """``fp32`` where the default files are there (they win, as in ``from_pretrained``), ``fp16`` where
    only the fp16 variant is (``*.fp16.safetensors``), None where neither."""
    files = _weight_files(folder)
    if any(".fp16." not in p.name for p in files):
        return "fp32"
    return "fp16" if files else None


def _lacks(folder: Path, layout: dict[str, str]) -> list[str]:
    """The files a diffusers folder lacks: each subfolder's config, and weights for models (naming
    what the subfolder holds instead, so a user sees e.g. a checkpoint of another format)."""
    missing = []
    for subfolder, config in layout.items():
        if not (folder / subfolder / config).is_file():
            missing.append(f"{subfolder}/{config}")
        elif config == "config.json" and _variant(folder / subfolder) is None:
            held = ", ".join(sorted(p.name for p in (folder / subfolder).iterdir())) or "nothing"
            missing.append(f"{subfolder}/ weights ({_WEIGHT_NAMES}; it holds {held})")
    return missing


def _cached_snapshot(repo: str, cache: Path) -> Optional[Path]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, cache_dir=cache, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None


def repo_candidates(piece: str) -> tuple[str, ...]:
    """The hub repo ids a piece is looked up under, in order: ``$ASD_SD21_REPO`` (or the upscaler's), then
    the built-in list."""
    known = {"sd21": SD21_REPOS, "upscaler": UPSCALER_REPOS}[piece]
    chosen = os.environ.get(REPO_VARIABLES[piece], "").strip()
    return ((chosen,) if chosen else ()) + tuple(repo for repo in known if repo != chosen)


@dataclass(frozen=True)
class ModelPiece:
    """One weight folder of the ``paper`` profile: where it was looked for and what it holds."""

    key: str  # sd21, upscaler, lora
    title: str
    where: str  # where it was looked for, in words
    folder: Optional[Path]  # the folder found, if any
    weight_files: tuple[Path, ...]
    problem: Optional[str]  # why it cannot be used; None when it can
    repo: Optional[str] = None  # the hub repo id it was found under (None: a path given)
    variant: Optional[str] = None  # fp32, fp16, or per subfolder where they differ

    @property
    def present(self) -> bool:
        return self.problem is None


def _model_folder(piece: str, folder: Path, where: str, repo: Optional[str]) -> ModelPiece:
    title, _, layout = _PIECES[piece]
    files = tuple(p for sub in layout for p in _weight_files(folder / sub))
    lacking = _lacks(folder, layout)
    variants = {sub: _variant(folder / sub) for sub, config in layout.items() if config == "config.json"}
    variant = (next(iter(set(variants.values()))) if len(set(variants.values())) == 1
               else ", ".join(f"{sub} {v}" for sub, v in variants.items()))
    return ModelPiece(piece, title, where, folder, files, f"{where} lacks {', '.join(lacking)}" if lacking else None,
                      repo, None if lacking else variant)


def locate_piece(piece: str, paths: WeightPaths) -> ModelPiece:
    """Find one piece (``sd21``, ``upscaler``, ``lora``) offline: the path given, else the Hugging Face
    cache under each of :func:`repo_candidates` (the first complete snapshot, else the first found)."""
    variable, given = PATH_VARIABLES[piece], getattr(paths, piece)
    if piece == "lora":
        where = f"{given} (from --lora or ${variable})" if given else f"--lora or ${variable}"
        file = Path(given) if given and Path(given).is_file() else None  # another tool's single file
        folder = file.parent if file else Path(given) if given and Path(given).is_dir() else None
        if not given:
            problem = (f"no folder given (--lora or ${variable}); train one with python -m baselines.train_arad, "
                       "or give any SD 2.1 LoRA diffusers' load_lora_weights takes")
        else:
            problem = None if folder else f"{given} does not exist (from --lora or ${variable})"
        files = (file,) if file else tuple(sorted(folder.glob("*.safetensors"))) if folder else ()
        return ModelPiece(piece, "ARAD LoRA", where, folder, files, problem)
    if piece in STABLESR_FILES:
        title, option = STABLESR_FILES[piece]
        where = f"{given} (from {option} or ${variable})" if given else f"{option} or ${variable}"
        file = Path(given) if given and Path(given).is_file() else None
        problem = None if file else (f"{given} is not a file (from {option} or ${variable})" if given
                                     else f"no file given ({option} or ${variable})")
        return ModelPiece(piece, title, where, file.parent if file else None, (file,) if file else (), problem)
    option = f"--{piece}"
    if given:
        where = f"{given} (from {option} or ${variable})"
        if not Path(given).is_dir():
            return ModelPiece(piece, _PIECES[piece][0], where, None, (), f"not found in {where}")
        return _model_folder(piece, Path(given), where, None)
    cache, repos = hub_cache_dir(), repo_candidates(piece)
    where = (f"the Hugging Face cache {cache} (repos tried in order: {', '.join(repos)}; or set {option} / "
             f"${variable} to a folder, or ${REPO_VARIABLES[piece]} to another repo id)")
    found = [_model_folder(piece, snapshot, f"{where}: {repo} at {snapshot}", repo)
             for repo in repos for snapshot in [_cached_snapshot(repo, cache)] if snapshot and snapshot.is_dir()]
    if not found:
        return ModelPiece(piece, _PIECES[piece][0], where, None, (), f"not found in {where}")
    return next((item for item in found if item.present), found[0])


def resolve_paper_pieces(needs, paths: WeightPaths) -> dict[str, ModelPiece]:
    """Every piece in ``needs`` located, or one :class:`MissingWeightsError` listing all that are missing.

    A path given (option or environment variable) is used as it is; otherwise the model is
    looked up in the Hugging Face cache, offline. The LoRA has no default: ARAD weights
    are ours to train (``python -m baselines.train_arad``) or any SD 2.1 LoRA diffusers loads.
    """
    pieces = [locate_piece(piece, paths) for piece in needs]
    problems = [f"{piece.title}: {piece.problem}" for piece in pieces if not piece.present]
    if problems:
        raise MissingWeightsError(
            "the paper profile needs weights that are not here (nothing is downloaded; "
            "HF_HUB_OFFLINE is respected):\n  - " + "\n  - ".join(problems))
    return {piece.key: piece for piece in pieces}


def resolve_paper_weights(needs, paths: WeightPaths) -> dict[str, Path]:
    """The folders of :func:`resolve_paper_pieces`."""
    return {key: piece.folder for key, piece in resolve_paper_pieces(needs, paths).items()}
