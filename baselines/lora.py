"""Saving, validating and loading the ARAD LoRA (SPEC §1, stage I of ``ar-*`` and ``asd``).

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
