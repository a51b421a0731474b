"""The empty-prompt embedding from StableSR's own OpenCLIP text tower.

StableSR conditions its UNet on OpenCLIP ViT-H/14 text features taken at the penultimate
layer (LDM's ``FrozenOpenCLIPEmbedder(layer="penultimate")``: every transformer block but the
last, then the final LayerNorm), and super-resolves with the empty prompt. The checkpoint
carries that tower (``cond_stage_model.model.*``), so the embedding is computed from it, once,
with open_clip's own ``TextTransformer`` and tokenizer.
"""

from __future__ import annotations

import torch
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import TextTransformer


def text_tower(width: int, heads: int, layers: int, output_dim: int) -> TextTransformer:
    """OpenCLIP's text tower (77 tokens, its BPE vocabulary)."""
    return TextTransformer(context_length=77, vocab_size=49408, width=width, heads=heads, layers=layers,
                           output_dim=output_dim)


@torch.no_grad()
def penultimate_embedding(tower: TextTransformer, prompts: list[str]) -> torch.Tensor:
    """Hidden states (B, 77, width) after all blocks but the last, through ``ln_final``."""
    ids = SimpleTokenizer()(list(prompts)).to(tower.positional_embedding.device)
    x = tower.token_embedding(ids) + tower.positional_embedding
    for block in tower.transformer.resblocks[:-1]:
        x = block(x, attn_mask=tower.attn_mask)
    return tower.ln_final(x)
