"""Saving, validating and loading the ARAD LoRA (docs/design.md, "Stage I"; stage I of ``ar-*`` and ``asd``).

A LoRA folder holds two files:

* ``pytorch_lora_weights.safetensors`` — the UNet's LoRA weights in the peft layout
  diffusers writes with ``StableDiffusionPipeline.save_lora_weights``: keys
  ``unet.<module>.lora_A.weight`` / ``unet.<module>.lora_B.weight``, and the adapter's
  ``LoraConfig`` in the safetensors header (``lora_adapter_metadata``). diffusers reads
  it as it is: ``pipe.load_lora_weights(folder)`` or
  ``unet.load_lora_adapter(folder, prefix="unet", weight_name=...)``.
* ``arad_lora.json`` — our metadata: the base model it was trained for (name, a
  fingerprint of the UNet architecture and a probe of its weights), the LoRA rank, the
  buckets, the training settings and the hash of the data. It is written last, so a
  folder with it is complete.

:func:`load_arad_lora` checks both before it touches the UNet: a folder that is not a
LoRA, or a LoRA trained for another base model, is refused with a message that says
which.

A LoRA made by another tool (diffusers' training scripts, peft, kohya's ``lora_unet_`` keys)
has no ``arad_lora.json``: :func:`load_external_lora` loads it as diffusers'
``load_lora_weights`` would, after checking that every key fits this base model's shapes
(a LoRA for SD 1.5 or SDXL is refused, naming keys), and records what the file itself tells
(rank, target modules, key format, sha256). Its trained buckets are unknown, so its record
has none.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
LORA_METADATA = "arad_lora.json"
FORMAT = "asd-arad-lora"
FORMAT_VERSION = 1
DEFAULT_ADAPTER = "arad"

#: UNet config keys that define its architecture (and so which LoRA keys and shapes fit).
FINGERPRINT_KEYS = (
    "sample_size",
    "in_channels",
    "out_channels",
    "block_out_channels",
    "layers_per_block",
    "down_block_types",
    "mid_block_type",
    "up_block_types",
    "cross_attention_dim",
    "attention_head_dim",
    "num_attention_heads",
    "transformer_layers_per_block",
    "use_linear_projection",
    "upcast_attention",
    "only_cross_attention",
    "class_embed_type",
    "addition_embed_type",
    "encoder_hid_dim",
    "time_cond_proj_dim",
    "norm_num_groups",
)
_PROBE_VALUES = 16
_EXPECTED = (
    f"expected a folder holding {LORA_WEIGHTS} (a safetensors file with lora_A/lora_B keys) "
    f"and {LORA_METADATA} (our metadata json, written by python -m baselines.train_arad)"
)


class LoraError(ValueError):
    """A LoRA that cannot be used: not a LoRA, or not for this base model."""


class NotALoraError(LoraError):
    """The path is not a LoRA folder written by :mod:`baselines.train_arad`."""


class BaseMismatchError(LoraError):
    """The LoRA was trained for another base model."""


@dataclass(frozen=True)
class LoraInfo:
    """A validated LoRA folder and its metadata."""

    path: Path
    metadata: dict

    @property
    def rank(self) -> int:
        return int(self.metadata["lora"]["rank"])

    @property
    def base(self) -> dict:
        return self.metadata["base"]

    @property
    def buckets(self) -> list[str]:
        """The training buckets, ``"HxW"`` at the size they were trained (after any divisor)."""
        return list(self.metadata["training"]["bucket_sizes"])


# --------------------------------------------------------------------------- identity


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model under DDP / ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def architecture(unet: torch.nn.Module) -> dict:
    """The UNet config entries of :data:`FINGERPRINT_KEYS` (absent keys are left out)."""
    config = unwrap(unet).config
    return {k: _plain(config[k]) for k in FINGERPRINT_KEYS if k in config}


def fingerprint(unet: torch.nn.Module) -> str:
    """sha256 (16 hex digits) of the UNet's architecture; equal for equal configs."""
    text = json.dumps(architecture(unet), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_probe(unet: torch.nn.Module) -> list[float]:
    """A few base weights (the first values of ``conv_in`` and ``conv_out``).

    Two UNets of the same architecture with different weights (another checkpoint,
    another random initialisation) differ here; the same weights loaded in fp16 or bf16
    agree within :func:`same_weights`' tolerance.
    """
    bare = unwrap(unet)
    values = []
    for name in ("conv_in", "conv_out"):
        layer = getattr(bare, name, None)
        if layer is not None and hasattr(layer, "weight"):
            values += layer.weight.detach().flatten()[: _PROBE_VALUES // 2].float().cpu().tolist()
    return [round(v, 7) for v in values]


def same_weights(a: list[float], b: list[float]) -> bool:
    """Whether two probes come from the same weights (tolerates fp16/bf16 rounding)."""
    return len(a) == len(b) and bool(np.allclose(a, b, rtol=2e-2, atol=1e-4))


def base_identity(unet: torch.nn.Module, name: str | None = None) -> dict:
    """What a LoRA records about its base model: name, fingerprint, architecture, weights probe."""
    return {
        "name": name,
        "fingerprint": fingerprint(unet),
        "unet_config": architecture(unet),
        "weights_probe": weights_probe(unet),
    }


def _describe(base: dict) -> str:
    name = base.get("name") or "(unnamed)"
    return f"{name} (UNet fingerprint {base.get('fingerprint')})"


def check_base(info: LoraInfo, unet: torch.nn.Module, name: str | None = None) -> None:
    """Raise :class:`BaseMismatchError` unless ``info`` was trained for this UNet.

    The check compares the architecture fingerprint and the weights probe; the names
    only make the message readable (the same model may go by several names).
    """
    trained = info.base
    here = base_identity(unet, name)
    if trained.get("fingerprint") != here["fingerprint"]:
        diff = sorted(
            k for k in set(trained.get("unet_config", {})) | set(here["unet_config"])
            if trained.get("unet_config", {}).get(k) != here["unet_config"].get(k)
        )
        detail = ", ".join(
            f"{k}: {trained.get('unet_config', {}).get(k)!r} vs {here['unet_config'].get(k)!r}" for k in diff[:4]
        )
        raise BaseMismatchError(
            f"LoRA at {info.path} was trained for base {_describe(trained)}, not {_describe(here)}"
            + (f"; the UNet configs differ in {detail}" if detail else "")
        )
    if not same_weights(trained.get("weights_probe", []), here["weights_probe"]):
        raise BaseMismatchError(
            f"LoRA at {info.path} was trained for base {_describe(trained)}, not {_describe(here)}: "
            "same architecture but other weights (another checkpoint or random initialisation)"
        )


# --------------------------------------------------------------------------- reading


def read_arad_lora(path: str | os.PathLike) -> LoraInfo:
    """Validate a LoRA folder (or the weights file inside one) and return its metadata.

    Raises :class:`NotALoraError`, saying what was expected and what is wrong.
    """
    path = Path(path)
    if path.is_file() and path.name in (LORA_WEIGHTS, LORA_METADATA):
        path = path.parent
    if not path.exists():
        raise NotALoraError(f"{path} is not a LoRA: {_EXPECTED}; the path does not exist")
    if not path.is_dir():
        raise NotALoraError(f"{path} is not a LoRA: {_EXPECTED}; it is a file")
    weights, meta_file = path / LORA_WEIGHTS, path / LORA_METADATA
    if not weights.is_file():
        raise NotALoraError(f"{path} is not a LoRA: {_EXPECTED}; {LORA_WEIGHTS} is missing")
    keys = _safetensors_keys(path, weights)
    lora_keys = [k for k in keys if ".lora_A." in k or ".lora_B." in k]
    if not lora_keys or len(lora_keys) != len(keys):
        odd = [k for k in keys if k not in lora_keys][:3]
        raise NotALoraError(
            f"{path} is not a LoRA: {_EXPECTED}; {LORA_WEIGHTS} holds "
            + ("no tensors" if not keys else f"keys without lora_A/lora_B, e.g. {odd}")
        )
    if not meta_file.is_file():
        raise NotALoraError(f"{path} is not a LoRA: {_EXPECTED}; {LORA_METADATA} is missing")
    try:
        metadata = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotALoraError(f"{path} is not a LoRA: {_EXPECTED}; {LORA_METADATA} is not valid json ({exc})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise NotALoraError(f"{path} is not a LoRA: {_EXPECTED}; {LORA_METADATA} has no \"format\": \"{FORMAT}\"")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise NotALoraError(
            f"{path} is not a LoRA this version reads: format_version {metadata.get('format_version')}, "
            f"expected {FORMAT_VERSION}"
        )
    for field in ("base", "lora", "training"):
        if not isinstance(metadata.get(field), dict):
            raise NotALoraError(f"{path} is not a LoRA: {_EXPECTED}; {LORA_METADATA} lacks \"{field}\"")
    return LoraInfo(path, metadata)


def _safetensors_keys(folder: Path, weights: Path) -> list[str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            return list(f.keys())
    except (SafetensorError, OSError, ValueError) as exc:
        raise NotALoraError(f"{folder} is not a LoRA: {_EXPECTED}; {LORA_WEIGHTS} is not a safetensors file ({exc})") from exc


# --------------------------------------------------------------------------- writing


def lora_state_dict(unet: torch.nn.Module, adapter_name: str = DEFAULT_ADAPTER) -> dict[str, torch.Tensor]:
    """The adapter's weights in peft's layout (``...to_q.lora_A.weight``), on CPU, contiguous."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(unwrap(unet), adapter_name=adapter_name)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_arad_lora(
    unet: torch.nn.Module,
    folder: str | os.PathLike,
    metadata: dict,
    adapter_name: str = DEFAULT_ADAPTER,
) -> Path:
    """Write the adapter of ``unet`` and ``metadata`` as a LoRA folder; return the folder.

    ``metadata`` holds at least ``base`` (see :func:`base_identity`), ``lora`` and
    ``training``; ``format`` and ``format_version`` are added. Files are replaced
    atomically and the json is written last, so a reader never sees half a LoRA.
    """
    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bare = unwrap(unet)
    config = bare.peft_config[adapter_name].to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    state = lora_state_dict(bare, adapter_name)
    tmp_name = f".{LORA_WEIGHTS}.{os.getpid()}.tmp"
    StableDiffusionPipeline.save_lora_weights(
        folder,
        unet_lora_layers=state,
        weight_name=tmp_name,
        safe_serialization=True,
        unet_lora_adapter_metadata=config,
    )
    os.replace(folder / tmp_name, folder / LORA_WEIGHTS)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "weights": LORA_WEIGHTS, **metadata}
    tmp = folder / f".{LORA_METADATA}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / LORA_METADATA)
    return folder


# --------------------------------------------------------------------------- loading


def load_arad_lora(
    unet: torch.nn.Module,
    path: str | os.PathLike,
    *,
    base_name: str | None = None,
    adapter_name: str = DEFAULT_ADAPTER,
) -> LoraInfo:
    """Check that ``path`` is an ARAD LoRA for this ``unet``, then apply it; return its info.

    ``unet`` is a diffusers ``UNet2DConditionModel`` (``pipe.unet``); the adapter is
    added under ``adapter_name``. ``base_name`` (the
    profile or model id) only makes error messages readable. Raises
    :class:`NotALoraError` or :class:`BaseMismatchError` before the UNet is modified.
    """
    info = read_arad_lora(path)
    check_base(info, unet, base_name)
    bare = unwrap(unet)
    if adapter_name in (getattr(bare, "peft_config", None) or {}):
        raise LoraError(f"the UNet already has an adapter named {adapter_name!r}; pass another adapter_name")
    bare.load_lora_adapter(str(info.path), prefix="unet", weight_name=LORA_WEIGHTS, adapter_name=adapter_name)
    return info


# --------------------------------------------------------------------------- LoRAs from other tools

EXTERNAL = "external LoRA"
_EXTERNAL_NOTE = f"{EXTERNAL}: no {LORA_METADATA}, so its base model and trained buckets are unknown"


def is_arad_lora(path: str | os.PathLike) -> bool:
    """Whether ``path`` is (or lies in) a folder with our metadata; anything else is an external LoRA."""
    path = Path(path)
    folder = path.parent if path.is_file() and path.name in (LORA_WEIGHTS, LORA_METADATA) else path
    return (folder / LORA_METADATA).is_file()


def external_weights_file(path: str | os.PathLike) -> Path:
    """The weights file of an external LoRA: the file given, else the folder's ``pytorch_lora_weights``
    file, else its one ``.safetensors`` file."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise NotALoraError(f"{path} is not a LoRA: the path does not exist")
    for name in (LORA_WEIGHTS, "pytorch_lora_weights.bin"):
        if (path / name).is_file():
            return path / name
    candidates = sorted(path.glob("*.safetensors"))
    if len(candidates) == 1:
        return candidates[0]
    held = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "nothing"
    raise NotALoraError(
        f"{path} is not a LoRA: expected {LORA_METADATA} (ours) or one LoRA weights file ({LORA_WEIGHTS} as "
        f"diffusers' save_lora_weights writes it, or a single .safetensors); it holds {held}"
        + ("; pass the file itself" if candidates else ""))


def key_format(keys) -> str:
    """How a LoRA file spells its keys: kohya, peft or one of diffusers' layouts."""
    keys = list(keys)
    if any(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in keys):
        return "kohya (lora_unet_* / lora_te_*)"
    for marker, name in ((".lora_A.", "peft (lora_A / lora_B)"), (".lora.down.", "diffusers (lora.down / lora.up)"),
                         (".lora_linear_layer.", "diffusers (lora_linear_layer)"),
                         ("_lora.down.", "diffusers attention processors (to_q_lora)")):
        if any(marker in k for k in keys):
            return name
    raise NotALoraError(f"not a LoRA: no LoRA keys (lora_A/lora_B, lora.down/lora.up, lora_unet_...), e.g. {keys[:3]}")


def _peft_part(state: dict, prefix: str, model: torch.nn.Module) -> dict:
    """The keys of ``prefix`` (unet, text_encoder) in peft's names, converted as diffusers converts them."""
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft, convert_unet_state_dict_to_peft

    part = {k.removeprefix(f"{prefix}."): v for k, v in state.items() if k.startswith(f"{prefix}.")}
    if not part:
        return part
    if prefix == "unet":
        return part if "lora_A" in next(iter(part)) else convert_unet_state_dict_to_peft(part)
    part = convert_state_dict_to_peft(convert_state_dict_to_diffusers(part))
    return part if hasattr(model, "text_model") else {k.removeprefix("text_model."): v for k, v in part.items()}


def _misfits(part: dict, prefix: str, model: torch.nn.Module) -> list[str]:
    """The keys whose module is missing or whose shape does not fit it (lora_A: inputs, lora_B: outputs)."""
    problems = []
    for key, tensor in part.items():
        marker = ".lora_A." if ".lora_A." in key else ".lora_B." if ".lora_B." in key else None
        if marker is None or not key.endswith(".weight"):
            continue
        name = key.split(marker)[0]
        try:
            module = model.get_submodule(name)
        except AttributeError:
            problems.append(f"{prefix}.{key} {tuple(tensor.shape)}: the base model has no {name}")
            continue
        weight = getattr(module, "weight", None)
        if weight is None or weight.ndim < 2:
            problems.append(f"{prefix}.{key} {tuple(tensor.shape)}: {name} is not a linear or conv layer")
        elif tensor.shape[1 if marker == ".lora_A." else 0] != weight.shape[1 if marker == ".lora_A." else 0]:
            problems.append(f"{prefix}.{key} {tuple(tensor.shape)} does not fit {name} {tuple(weight.shape)}")
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _raw_keys(file: Path) -> list[str]:
    """The keys of a weight file; a file that is no tensor file is not a LoRA."""
    try:
        if file.suffix == ".safetensors":
            return _safetensors_keys(file.parent, file)
        return list(torch.load(file, map_location="cpu", weights_only=True))
    except Exception as error:
        raise NotALoraError(f"{file} is not a LoRA: it does not read as a .safetensors or torch weight file "
                            f"({type(error).__name__}); give a LoRA folder or file (--lora)") from None


def load_external_lora(
    unet: torch.nn.Module,
    path: str | os.PathLike,
    *,
    text_encoder: torch.nn.Module | None = None,
    base_name: str | None = None,
    adapter_name: str = DEFAULT_ADAPTER,
) -> dict:
    """Load a LoRA without our metadata as ``StableDiffusionPipeline.load_lora_weights`` does (UNet, and the
    text encoder where the file has its keys); return its record (no ``trained_buckets``: unknown).

    Every key is checked against this base model's modules and shapes first, so a LoRA for
    another base model is refused, naming a few keys, before the models are touched.
    """
    from diffusers.loaders import StableDiffusionLoraLoaderMixin as Loader

    file = external_weights_file(path)
    fmt = key_format(_raw_keys(file))
    state, alphas, metadata = Loader.lora_state_dict(str(file.parent), weight_name=file.name,
                                                     local_files_only=True, return_lora_metadata=True)
    odd = [k for k in state if "lora" not in k]
    if odd:
        raise NotALoraError(f"{file} is not a LoRA diffusers loads: keys without 'lora', e.g. {odd[:3]}")
    bare = unwrap(unet)
    parts = {"unet": _peft_part(state, "unet", bare)}
    if text_encoder is not None:
        parts["text_encoder"] = _peft_part(state, "text_encoder", text_encoder)
    if not parts["unet"]:
        raise NotALoraError(f"{file} holds no UNet LoRA keys (unet.* or lora_unet_*), e.g. {list(state)[:3]}")
    problems = [p for prefix, part in parts.items() if part for p in _misfits(part, prefix, bare if prefix == "unet"
                                                                             else text_encoder)]
    if problems:
        raise BaseMismatchError(
            f"LoRA {file} does not fit base {base_name or '(unnamed)'}: {len(problems)} key(s) do not fit, e.g. "
            + "; ".join(problems[:4]) + " (a LoRA for another base model, e.g. SD 1.5 or SDXL?)")
    if adapter_name in (getattr(bare, "peft_config", None) or {}):
        raise LoraError(f"the UNet already has an adapter named {adapter_name!r}; pass another adapter_name")
    Loader.load_lora_into_unet(state, alphas, bare, adapter_name=adapter_name, metadata=metadata)
    if parts.get("text_encoder"):
        Loader.load_lora_into_text_encoder(state, alphas, text_encoder, lora_scale=1.0, adapter_name=adapter_name,
                                           metadata=metadata)
    ranks = sorted({int(v.shape[0]) for part in parts.values() for k, v in part.items() if ".lora_A." in k})
    targets = sorted({_leaf(k.split(".lora_A.")[0]) for part in parts.values() for k in part if ".lora_A." in k})
    alpha = (metadata or {}).get("unet.lora_alpha") or sorted(set((alphas or {}).values())) or None
    return {"kind": EXTERNAL, "path": str(path), "file": file.name, "sha256": _sha256(file), "key_format": fmt,
            "rank": ranks[0] if len(ranks) == 1 else ranks, "alpha": alpha, "target_modules": targets,
            "layers": {prefix: sum(".lora_A." in k for k in part) for prefix, part in parts.items() if part},
            "base": None, "note": _EXTERNAL_NOTE}


def _leaf(module: str) -> str:
    """``...attn1.to_out.0`` -> ``to_out.0``; ``...attn1.to_q`` -> ``to_q``."""
    parts = module.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() else parts[-1]
