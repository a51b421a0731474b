"""The models training needs (UNet, VAE, text encoder), read from any object that holds them,
and the size checks that follow from their downsampling factors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from datasets_build.sizes import Size

from ..lora import unwrap
from .config import TrainingError


@dataclass
class TrainModels:
    """What training needs: a UNet, a VAE, a text encoder and its tokenizer.

    ``encode`` (optional) maps a list of captions to encoder hidden states and replaces
    ``tokenizer`` + ``text_encoder``; ``name`` identifies the base model in the LoRA's
    metadata (a profile name or a model id).
    """

    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module | Callable | None = None
    tokenizer: Callable | None = None
    name: str | None = None
    encode: Callable[[list[str]], torch.Tensor] | None = None


def as_train_models(models: Any) -> TrainModels:
    """A :class:`TrainModels` from itself, a dict, a pipeline or any object with the attributes."""
    if isinstance(models, TrainModels):
        return models

    def get(key):
        if isinstance(models, dict):
            return models.get(key)
        return getattr(models, key, None)

    unet, vae = get("unet"), get("vae")
    if unet is None or vae is None:
        raise TrainingError(f"models must provide a unet and a vae; got {type(models).__name__}")
    name = get("name") or get("profile") or get("model_id") or get("name_or_path")
    if name is None and getattr(unet, "config", None) is not None:
        name = unet.config.get("_name_or_path") or None
    encode = get("encode_text") or get("encode_captions")
    text_encoder, tokenizer = get("text_encoder"), get("tokenizer")
    if encode is None and (text_encoder is None or tokenizer is None):
        raise TrainingError("models must provide text_encoder and tokenizer (or an encode_text callable)")
    return TrainModels(unet, vae, text_encoder, tokenizer, str(name) if name is not None else None, encode)


def encode_captions(models: TrainModels, captions: Sequence[str], device: torch.device | str) -> torch.Tensor:
    """Encoder hidden states for ``captions`` from the frozen text encoder (no gradients)."""
    captions = list(captions)
    with torch.no_grad():
        if models.encode is not None:
            return models.encode(captions).to(device)
        tok = models.tokenizer
        if hasattr(tok, "model_max_length") and hasattr(tok, "pad_token_id"):  # transformers
            ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
        else:  # open_clip: returns a LongTensor [n, context_length]
            ids = tok(captions)
        out = models.text_encoder(ids.to(device))
        if isinstance(out, torch.Tensor):
            return out
        return out[0]  # last_hidden_state (transformers ModelOutput or tuple)


def scale_factors(models: TrainModels) -> tuple[int, int]:
    """(VAE downsampling, UNet downsampling) in pixels / latent pixels."""
    vae_cfg, unet_cfg = unwrap(models.vae).config, unwrap(models.unet).config
    vae_f = 2 ** (len(vae_cfg.block_out_channels) - 1)
    unet_f = 2 ** (len(unet_cfg.down_block_types) - 1)
    return vae_f, unet_f


def smallest_divisor(models: Any) -> int:
    """The largest bucket divisor that still gives sizes the VAE and UNet can take.

    For the paper's models (VAE ×8, UNet ×8) that is 1; for a tiny VAE ×2 / UNet ×2, 16.
    """
    m = as_train_models(models)
    vae_f, unet_f = scale_factors(m)
    need = vae_f * unet_f
    if 64 % need:
        raise TrainingError(f"the bucket sides (multiples of 64) cannot be made divisible by VAE x UNet factor {need}")
    return 64 // need


def check_sizes(models: TrainModels, sizes: Sequence[Size]) -> None:
    vae_f, unet_f = scale_factors(models)
    need = vae_f * unet_f
    bad = [s.name for s in sizes if s.height % need or s.width % need]
    if bad:
        raise TrainingError(
            f"bucket sizes {', '.join(bad)} are not multiples of {need} (VAE x{vae_f}, UNet x{unet_f}); "
            "use a smaller --bucket-divisor"
        )
