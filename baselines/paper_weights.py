"""Where the ``paper`` profile finds its weights, offline, and the one error that names every piece missing.

The pieces: stage I's base model, the SD x4 upscaler (diffusers folders), an ARAD LoRA (a folder
or one file) and StableSR's two released files. A folder given (an option or an environment
variable) is used as it is; otherwise a model is looked up in the Hugging Face cache under each of
its repo ids in turn (the original first, then mirrors), never downloaded (``local_files_only``). A
folder may hold the default weight files or only their fp16 variant (``*.fp16.safetensors``, what
``from_pretrained(..., variant="fp16")`` downloads); :func:`variant_of` says which one loads.

Stage I's piece (:data:`BASE`) is the run's base model, whichever is registered
(:mod:`baselines.base_models`, a plugin's too): its title, repo ids and layout (unet, vae, each text
encoder's subfolder, scheduler; no tokenizer, text is tokenised by open_clip's BPE) come from its
entry, so a new model needs no code here. Its folder is given by ``--model-weights`` (the run's
model, whichever it is) or by a variable made from its name (:func:`model_variable`: ``$ASD_SD21``,
``$ASD_SDXL``, a plugin's ``my-sd21`` ``$ASD_MY_SD21``); ``$ASD_<NAME>_REPO`` names another repo id
to try first, and ``--vae`` / ``$ASD_<NAME>_VAE`` a VAE folder that replaces the model's own (SDXL's
fp16-fix VAE, whose decoder does not overflow in fp16). SD 2.1 keeps its own option, ``--sd21``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from baselines.base_models import DEFAULT_MODEL, base_models, get_base_model

BASE = "base"  # the stage I piece: the run's base model
UPSCALER_REPO = "stabilityai/stable-diffusion-x4-upscaler"
#: Where the hub cache may hold the upscaler, tried in this order: the original id first (withdrawn with the
#: SD 2 family, see baselines.base_models.sd21), then the community mirrors known as of 2026-12. A new mirror
#: goes at the end of its tuple; a user can name one without editing code through REPO_VARIABLES, tried first.
UPSCALER_REPOS = (UPSCALER_REPO, "sd2-community/stable-diffusion-x4-upscaler")
UPSCALER_LAYOUT = {"unet": "config.json", "vae": "config.json", "text_encoder": "config.json",
                   "scheduler": "scheduler_config.json", "low_res_scheduler": "scheduler_config.json"}
#: The variables of the pieces that are not base models (a base model's are made from its name: model_variable).
PATH_VARIABLES = {"upscaler": "ASD_X4_UPSCALER", "lora": "ASD_ARAD_LORA",
                  "stablesr": "ASD_STABLESR", "stablesr_vae": "ASD_STABLESR_VAE"}
REPO_VARIABLES = {"upscaler": "ASD_X4_UPSCALER_REPO"}
#: StableSR's two released files (baselines/stablesr), each one file, given by path only.
STABLESR_FILES = {"stablesr": ("StableSR (stablesr_000117.ckpt)", "--stablesr-ckpt"),
                  "stablesr_vae": ("StableSR CFW VAE (vqgan_cfw_00011.ckpt)", "--stablesr-vae")}
#: Base models with a folder option of their own besides --model-weights: SD 2.1's, from before models were entries.
FOLDER_OPTIONS = {DEFAULT_MODEL: "--sd21"}
MODEL_FOLDER_OPTION, VAE_OPTION = "--model-weights", "--vae"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: The default weight files of a diffusers / transformers model folder, with their fp16 variant.
_WEIGHT_NAMES = "diffusion_pytorch_model.safetensors, model.safetensors or their .fp16. variants"


class MissingWeightsError(FileNotFoundError):
    """The ``paper`` profile lacks weights; the message lists each missing piece and where."""


def model_variable(model: str, suffix: str = "") -> str:
    """The environment variable of base model ``model``: ``ASD_`` and its name upper-cased, each character
    that is not a letter or digit as ``_`` (``my-sd21``: ``ASD_MY_SD21``), then ``suffix`` (``_REPO``, ``_VAE``)."""
    return "ASD_" + "".join(c if c.isalnum() else "_" for c in model.upper()) + suffix


@dataclass(frozen=True)
class WeightPaths:
    """Where the ``paper`` profile looks: folders or files given (None: the Hugging Face cache, or nothing).
    ``models``: a base model's name to its folder; ``vaes``: a base model's name to a VAE folder replacing
    the one in its folder."""

    upscaler: Optional[str] = None
    lora: Optional[str] = None
    stablesr: Optional[str] = None  # files, not folders
    stablesr_vae: Optional[str] = None
    models: Mapping[str, str] = field(default_factory=dict, hash=False)
    vaes: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_environment(cls, models: Optional[Mapping[str, Optional[str]]] = None,
                         vaes: Optional[Mapping[str, Optional[str]]] = None, **given: Optional[str]) -> "WeightPaths":
        """Paths given explicitly (CLI options) win over the environment: ``$ASD_X4_UPSCALER``, ``$ASD_ARAD_LORA``,
        StableSR's, and each registered base model's ``$ASD_<NAME>`` and ``$ASD_<NAME>_VAE`` (read now, so a
        plugin's model registered before this call has its variables read too)."""
        def chosen(explicit: Optional[str], variable: str) -> Optional[str]:
            return explicit or os.environ.get(variable) or None

        names, models, vaes = list(base_models()), models or {}, vaes or {}
        folders = {name: chosen(models.get(name), model_variable(name)) for name in names}
        vae_folders = {name: chosen(vaes.get(name), model_variable(name, "_VAE")) for name in names}
        return cls(**{key: chosen(given.get(key), variable) for key, variable in PATH_VARIABLES.items()},
                   models={name: folder for name, folder in folders.items() if folder},
                   vaes={name: folder for name, folder in vae_folders.items() if folder})


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def paper_needs(needs: tuple[str, ...], model: str = DEFAULT_MODEL) -> tuple[str, ...]:
    """The pieces a method's ``needs`` come to on base ``model``: a model trained on aspect buckets (SDXL,
    ``BaseModel.multi_aspect``) runs ARAD's stage I as it is, so no LoRA is looked for."""
    return tuple(piece for piece in needs if piece != "lora" or not get_base_model(model).multi_aspect)


def _weight_files(folder: Path) -> list[Path]:
    """The weight files of one model folder: whole files, or sharded ones with their index."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix in _WEIGHT_SUFFIXES or (p.suffix == ".json" and ".index." in p.name))


def variant_of(folder: Path) -> Optional[str]:
    """``fp32`` where the default files are there (they win, as in ``from_pretrained``), ``fp16`` where
    only the fp16 variant is (``*.fp16.safetensors``), None where neither."""
    files = _weight_files(folder)
    if any(".fp16." not in p.name for p in files):
        return "fp32"
    return "fp16" if files else None


def _lacks(folder: Path, layout: Mapping[str, str]) -> list[str]:
    """The files a diffusers folder lacks: each subfolder's config, and weights for models (naming
    what the subfolder holds instead, so a user sees e.g. a checkpoint of another format)."""
    missing = []
    for subfolder, config in layout.items():
        if not (folder / subfolder / config).is_file():
            missing.append(f"{subfolder}/{config}")
        elif config == "config.json" and variant_of(folder / subfolder) is None:
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


@dataclass(frozen=True)
class _FolderPiece:
    """What locating one diffusers-folder piece reads: its title and layout, the repo ids it is known under,
    the options and variables that give it, the folder given (if any) and a replacement VAE folder (if any)."""

    key: str
    title: str
    layout: Mapping[str, str]
    repos: tuple[str, ...]
    options: str  # the options that give its folder, in words
    variable: str
    repo_variable: str
    given: Optional[str]
    vae: Optional[str] = None
    vae_words: str = ""


def _folder_piece(piece: str, paths: WeightPaths, model: str) -> _FolderPiece:
    """Stage I's base model (its entry says what) or the x4 upscaler."""
    if piece != BASE:
        return _FolderPiece(piece, "SD x4 upscaler", UPSCALER_LAYOUT, UPSCALER_REPOS, f"--{piece}",
                            PATH_VARIABLES[piece], REPO_VARIABLES[piece], getattr(paths, piece))
    base = get_base_model(model)
    vae = paths.vaes.get(base.name)
    layout = {sub: config for sub, config in base.layout.items() if not (vae and sub == "vae")}
    options = ", ".join(filter(None, (FOLDER_OPTIONS.get(base.name), MODEL_FOLDER_OPTION)))
    return _FolderPiece(BASE, f"{base.title} weights", layout, base.repos, options, model_variable(base.name),
                        model_variable(base.name, "_REPO"), paths.models.get(base.name), vae,
                        f"{VAE_OPTION} or ${model_variable(base.name, '_VAE')}")


def repo_candidates(piece: str, model: str = DEFAULT_MODEL) -> tuple[str, ...]:
    """The hub repo ids a piece (of base ``model``, for :data:`BASE`) is looked up under, in order: the one its
    variable names (``$ASD_SDXL_REPO``, ``$ASD_X4_UPSCALER_REPO``), then those its entry lists."""
    return _candidates(_folder_piece(piece, WeightPaths(), model))


def _candidates(spec: _FolderPiece) -> tuple[str, ...]:
    chosen = os.environ.get(spec.repo_variable, "").strip()
    return ((chosen,) if chosen else ()) + tuple(repo for repo in spec.repos if repo != chosen)


@dataclass(frozen=True)
class ModelPiece:
    """One weight folder of the ``paper`` profile: where it was looked for and what it holds."""

    key: str  # base, upscaler, lora, stablesr, stablesr_vae
    title: str
    where: str  # where it was looked for, in words
    folder: Optional[Path]  # the folder found, if any
    weight_files: tuple[Path, ...]
    problem: Optional[str]  # why it cannot be used; None when it can
    repo: Optional[str] = None  # the hub repo id it was found under (None: a path given)
    variant: Optional[str] = None  # fp32, fp16, or per subfolder where they differ
    vae_folder: Optional[Path] = None  # a VAE folder given to replace the one in ``folder``

    @property
    def present(self) -> bool:
        return self.problem is None

    def location(self, subfolder: str) -> tuple[Path, Optional[str]]:
        """Where one model of the piece loads from (``from_pretrained``'s folder and subfolder): a replacement
        VAE folder as it is, else the subfolder of the piece's folder."""
        if subfolder == "vae" and self.vae_folder is not None:
            return self.vae_folder, None
        return self.folder, subfolder


def _model_folder(spec: _FolderPiece, folder: Path, where: str, repo: Optional[str]) -> ModelPiece:
    """A folder found for ``spec``, checked: every config and weights of its layout, and the replacement VAE."""
    models = {sub: folder / sub for sub, config in spec.layout.items() if config == "config.json"}
    problems = [f"{where} lacks {', '.join(lacking)}"] if (lacking := _lacks(folder, spec.layout)) else []
    vae = Path(spec.vae) if spec.vae else None
    if vae is not None:
        models["vae"] = vae
        if not vae.is_dir():
            problems.append(f"the VAE folder {vae} (from {spec.vae_words}) does not exist")
        elif lacking_vae := _lacks(vae.parent, {vae.name: "config.json"}):
            problems.append(f"the VAE folder {vae.parent} (from {spec.vae_words}) lacks {', '.join(lacking_vae)}")
    files = tuple(p for path in models.values() for p in _weight_files(path))
    variants = {sub: variant_of(path) for sub, path in models.items()}
    variant = (next(iter(set(variants.values()))) if len(set(variants.values())) == 1
               else ", ".join(f"{sub} {v}" for sub, v in variants.items()))
    return ModelPiece(spec.key, spec.title, where, folder, files, "; ".join(problems) or None, repo,
                      None if problems else variant, vae)


def _located_folder(spec: _FolderPiece) -> ModelPiece:
    """The folder given, else the first complete snapshot in the hub cache under the candidate ids (else the
    first found, whose problem says what it lacks)."""
    if spec.given:
        where = f"{spec.given} (from {spec.options} or ${spec.variable})"
        if not Path(spec.given).is_dir():
            return ModelPiece(spec.key, spec.title, where, None, (), f"not found in {where}")
        return _model_folder(spec, Path(spec.given), where, None)
    cache, repos = hub_cache_dir(), _candidates(spec)
    if not repos:
        return ModelPiece(spec.key, spec.title, f"{spec.options} or ${spec.variable}", None, (),
                          f"no folder given ({spec.options} or ${spec.variable}) and no hub repo id to look for in "
                          f"the cache (its registry entry lists none): give a folder, or a repo id with "
                          f"${spec.repo_variable}")
    where = (f"the Hugging Face cache {cache} (repos tried in order: {', '.join(repos)}; or set {spec.options} / "
             f"${spec.variable} to a folder, or ${spec.repo_variable} to another repo id)")
    found = [_model_folder(spec, snapshot, f"{where}: {repo} at {snapshot}", repo)
             for repo in repos for snapshot in [_cached_snapshot(repo, cache)] if snapshot and snapshot.is_dir()]
    if not found:
        return ModelPiece(spec.key, spec.title, where, None, (), f"not found in {where}")
    return next((item for item in found if item.present), found[0])


def locate_piece(piece: str, paths: WeightPaths, model: str = DEFAULT_MODEL) -> ModelPiece:
    """Find one piece offline (:data:`BASE`: base ``model``'s weights; ``upscaler``, ``lora``, StableSR's files):
    the path given, else, for a model folder, the Hugging Face cache under each of :func:`repo_candidates`."""
    if piece == "lora":
        variable, given = PATH_VARIABLES[piece], paths.lora
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
        (title, option), variable, given = STABLESR_FILES[piece], PATH_VARIABLES[piece], getattr(paths, piece)
        where = f"{given} (from {option} or ${variable})" if given else f"{option} or ${variable}"
        file = Path(given) if given and Path(given).is_file() else None
        problem = None if file else (f"{given} is not a file (from {option} or ${variable})" if given
                                     else f"no file given ({option} or ${variable})")
        return ModelPiece(piece, title, where, file.parent if file else None, (file,) if file else (), problem)
    return _located_folder(_folder_piece(piece, paths, model))


def resolve_paper_pieces(needs, paths: WeightPaths, model: str = DEFAULT_MODEL) -> dict[str, ModelPiece]:
    """Every piece in ``needs`` (stage I's on base ``model``) located, or one :class:`MissingWeightsError`
    listing all that are missing and where each was looked for.

    The LoRA has no default: ARAD weights are ours to train (``python -m baselines.train_arad``) or any
    SD 2.1 LoRA diffusers loads."""
    pieces = [locate_piece(piece, paths, model) for piece in needs]
    problems = [f"{piece.title}: {piece.problem}" for piece in pieces if not piece.present]
    if problems:
        raise MissingWeightsError(
            "the paper profile needs weights that are not here (nothing is downloaded; "
            "HF_HUB_OFFLINE is respected):\n  - " + "\n  - ".join(problems))
    return {piece.key: piece for piece in pieces}


def resolve_paper_weights(needs, paths: WeightPaths, model: str = DEFAULT_MODEL) -> dict[str, Path]:
    """The folders of :func:`resolve_paper_pieces`."""
    return {key: piece.folder for key, piece in resolve_paper_pieces(needs, paths, model).items()}
