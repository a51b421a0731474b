"""CLIP score: 100 x cosine of OpenCLIP image and text embeddings, floored at 0.

The paper does not name its CLIP model, so model and pretrained tag are parameters and
recorded with every score. Real weights are read from a local file (open_clip's own
cache locations or an explicit path), loaded with the pretrained tag's preprocessing
and activation (QuickGELU for OpenAI weights), which open_clip cannot infer from a
bare file. The `tiny` profile is a two-layer ViT in open_clip's CLIP class with seeded
random weights; its tokenizer is open_clip's bundled BPE, so nothing is fetched.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import open_clip
import torch
from PIL import Image

from .images import ImageLike, to_rgb_array
from .weights import (CLIP_MODEL, CLIP_PRETRAINED, clip_candidates, default_device, locate, seeded, sha256_file,
                      uses_random_weights)

TINY_BASE = "ViT-B-32"
TINY_OVERRIDES = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 64, "head_width": 32, "layers": 2},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@dataclass
class ClipModel:
    """An OpenCLIP model with its image preprocessing, tokenizer and recorded conventions."""

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    conventions: dict


@contextlib.contextmanager
def _quiet_logging():
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def load_clip(
    profile: str,
    model: str = CLIP_MODEL,
    pretrained: str = CLIP_PRETRAINED,
    path=None,
    seed: int = 0,
    device=None,
) -> ClipModel:
    """The profile's CLIP model: `model`/`pretrained` from a local file, or the tiny random one."""
    device = torch.device(device) if device is not None else default_device()
    if uses_random_weights(profile):
        with seeded(seed), _quiet_logging():  # open_clip warns that no weights were loaded: intended here
            net, _, preprocess = open_clip.create_model_and_transforms(
                TINY_BASE, pretrained=None, device=device, **copy.deepcopy(TINY_OVERRIDES))
        conventions = {"model": f"tiny ({TINY_BASE} with {TINY_OVERRIDES})", "pretrained": f"random (seed {seed})"}
        tokenizer = open_clip.get_tokenizer(TINY_BASE)
    else:
        file = locate("clip", clip_candidates(model, pretrained, path), f"{model} / {pretrained}", "CLIP score")
        tag = open_clip.get_pretrained_cfg(model, pretrained)
        net, _, preprocess = open_clip.create_model_and_transforms(
            model,
            pretrained=str(file),
            device=device,
            force_quick_gelu=tag.get("quick_gelu", False),
            image_mean=tag.get("mean"),
            image_std=tag.get("std"),
            image_interpolation=tag.get("interpolation"),
            image_resize_mode=tag.get("resize_mode"),
        )
        conventions = {"model": model, "pretrained": pretrained, "weights": file.name,
                       "weights_sha256": sha256_file(file)}
        tokenizer = open_clip.get_tokenizer(model)
    conventions.update(
        score="max(100 * cos(image, text), 0)",
        preprocess="open_clip eval transform: " + " ".join(str(preprocess).split()),
    )
    return ClipModel(net.eval(), preprocess, tokenizer, conventions)


@torch.no_grad()
def clip_scores(images: Sequence[ImageLike], texts: Sequence[str], clip: ClipModel, batch_size: int = 32) -> np.ndarray:
    """Per-pair CLIP scores of images[i] with texts[i]."""
    if len(images) != len(texts) or not images:
        raise ValueError(f"need matching, non-empty images and texts, got {len(images)} and {len(texts)}")
    device = next(clip.model.parameters()).device
    scores = []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([clip.preprocess(Image.fromarray(to_rgb_array(image)))
                              for image in images[start:start + batch_size]]).to(device)
        tokens = clip.tokenizer(list(texts[start:start + batch_size])).to(device)
        image_emb = torch.nn.functional.normalize(clip.model.encode_image(pixels).float(), dim=-1)
        text_emb = torch.nn.functional.normalize(clip.model.encode_text(tokens).float(), dim=-1)
        scores.append((100 * (image_emb * text_emb).sum(dim=-1)).clamp(min=0).cpu().double().numpy())
    return np.concatenate(scores)


def clip_score(images: Sequence[ImageLike], texts: Sequence[str], clip: ClipModel, batch_size: int = 32) -> dict:
    """Mean CLIP score of image-text pairs, with the conventions that produced it."""
    scores = clip_scores(images, texts, clip, batch_size)
    return {"metric": "clip_score", "value": float(scores.mean()), "n": len(scores), "conventions": clip.conventions}
