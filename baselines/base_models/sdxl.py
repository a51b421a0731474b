"""SDXL base 1.0 as a base model: its published configs, their tiny stand-ins and its conditioning.

As ``StableDiffusionXLPipeline`` conditions its UNet: two text encoders, CLIP ViT-L/14
(``CLIPTextModel``) and OpenCLIP ViT-bigG/14 (``CLIPTextModelWithProjection``), each read at its
penultimate hidden state, concatenated along the features (768 + 1280 = the UNet's
``cross_attention_dim`` 2048); the second's projected pooled output is ``text_embeds``, and the
micro-conditioning ``time_ids`` is (original size, crop top-left, target size) = (H, W, 0, 0, H, W)
of the image stage I makes. The unconditional branch is zeros for every text tensor (SDXL
base's ``force_zeros_for_empty_prompt``), with the same ``time_ids``.

Tokens: both encoders use CLIP's BPE vocabulary, which is open_clip's SimpleTokenizer's, so no
tokenizer files are needed. The two released tokenizers differ only in padding: ``tokenizer``
(ViT-L/14's) pads with its end-of-text id 49407, ``tokenizer_2`` with "!" = 0 (its
``pad_token``), as SimpleTokenizer does; :func:`baselines.base_models.registry.token_ids` pads
each encoder's ids with its own, so the padded positions' hidden states, which the UNet
cross-attends to, are the released pipeline's.

Sampling: SDXL base ships EulerDiscreteScheduler; stage I here is the suite's DDIM loop for every
model, on SDXL's betas and spacing (:data:`SDXL_SCHEDULER`), so methods compare on one sampler.
``sr-plus`` on the tiny models equals ``StableDiffusionXLPipeline`` given that DDIM config and
these modules (``tests/test_sdxl.py``, tokenizers included).

Buckets: SDXL was fine-tuned on aspect buckets of about 1024² pixels, sides in steps of 64
(Podell et al. 2023, "SDXL: Improving Latent Diffusion Models for High-Resolution Image
Synthesis", arXiv 2307.01952, Sec. 2.3 and the table of App. I, "Multi-Aspect Training");
:data:`SDXL_BUCKETS` is that table, in its order. It is not symmetric as printed: 704×1344
(H×W) is listed, 1344×704 is not, so a tall 1.9 ratio goes to 1344×768 or 1408×704.
"""

from __future__ import annotations

import torch
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from baselines.base_models.registry import BaseModel, Conditioning, TextEncoder, register_base_model, token_ids
from baselines.origins import BUILT_IN

SDXL_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_REPOS = (SDXL_REPO,)  # mirrors go after it ($ASD_SDXL_REPO names one without editing code)
END_OF_TEXT = 49407  # CLIP ViT-L/14's tokenizer pads with it

#: SDXL's training buckets (H, W), as the SDXL paper's App. I lists them, widest first (see the module's docstring).
SDXL_BUCKETS = tuple((int(h), int(w)) for h, w in (pair.split("x") for pair in (
    "512x2048 512x1984 512x1920 512x1856 576x1792 576x1728 576x1664 640x1600 640x1536 704x1472 704x1408 704x1344 "
    "768x1344 768x1280 832x1216 832x1152 896x1152 896x1088 960x1088 960x1024 1024x1024 1024x960 1088x960 "
    "1088x896 1152x896 1152x832 1216x832 1280x768 1344x768 1408x704 1472x704 1536x640 1600x640 1664x576 "
    "1728x576 1792x576 1856x512 1920x512 1984x512 2048x512").split()))

#: unet/config.json of SDXL base 1.0 (diffusers' keys; defaults left out). ``attention_head_dim`` is
#: diffusers' historical name for the number of heads; the first block has no attention, so its
#: transformer layer count is unused.
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_embed_type_num_heads=64,
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)  # 1280 pooled + 6 time ids x 256
SDXL_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=1024, scaling_factor=0.13025, force_upcast=True)
#: text_encoder/config.json (CLIP ViT-L/14) and text_encoder_2/config.json (OpenCLIP ViT-bigG/14), whole:
#: SDXL reads the penultimate layer through ``output_hidden_states``, and bigG's pooled output needs the last.
CLIP_L14_TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, bos_token_id=0, eos_token_id=2,
    pad_token_id=1)
OPENCLIP_BIGG_TEXT = dict(
    CLIP_L14_TEXT, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
    hidden_act="gelu", projection_dim=1280)
#: The DDIM settings of SDXL base's scheduler config (it ships EulerDiscreteScheduler; the suite's loop is DDIM).
SDXL_SCHEDULER = dict(
    num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
    prediction_type="epsilon", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    timestep_spacing="leading")

#: SDXL's layout (three blocks, attention in the lower two, text_time added embedding, the same module
#: names) at tiny widths; the two encoders differ in width so that their order matters. The middle block
#: keeps SDXL's two transformer layers: HiDiffusion's SDXL keys window the attention of both
#: (``down_blocks.1.attentions.0.transformer_blocks.1`` ...); the lowest keeps one of SDXL's ten (no key names it).
TINY_SDXL_TEXT = dict(CLIP_L14_TEXT, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, projection_dim=32)
TINY_SDXL_TEXT_2 = dict(OPENCLIP_BIGG_TEXT, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, projection_dim=32)
TINY_SDXL_UNET = dict(
    SDXL_UNET, block_out_channels=(16, 32, 32), norm_num_groups=8, transformer_layers_per_block=(1, 2, 1),
    attention_head_dim=(1, 2, 2), cross_attention_dim=32 + 64, addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=32 + 6 * 8)
TINY_SDXL_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
    block_out_channels=(4, 4, 8, 8), norm_num_groups=4,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=128, scaling_factor=0.13025, mid_block_add_attention=False)

ENCODERS = (
    TextEncoder(CLIPTextModel, "text_encoder", {"tiny": TINY_SDXL_TEXT, "paper-arch": CLIP_L14_TEXT},
                pad_id=END_OF_TEXT),
    TextEncoder(CLIPTextModelWithProjection, "text_encoder_2",
                {"tiny": TINY_SDXL_TEXT_2, "paper-arch": OPENCLIP_BIGG_TEXT}, pad_id=0))


def condition(models, prompts: list[str], size: tuple[int, int]) -> Conditioning:
    """Both encoders' penultimate hidden states, concatenated; the second's pooled ``text_embeds``; the
    ``time_ids`` of an image of ``size`` (uncropped, made at that size)."""
    hidden = []
    for encoder, entry in zip((models.text_encoder, models.text_encoder_2), ENCODERS):
        output = encoder(token_ids(models.tokenizer, prompts, entry.pad_id).to(encoder.device),
                         output_hidden_states=True)
        hidden.append(output.hidden_states[-2])
    time_ids = torch.tensor([[*size, 0, 0, *size]] * len(prompts), dtype=hidden[0].dtype, device=hidden[0].device)
    return Conditioning(torch.cat(hidden, dim=-1), {"text_embeds": output.text_embeds, "time_ids": time_ids})


def unconditional(positive: Conditioning) -> Conditioning:
    """SDXL base's unconditional branch (its pipeline's ``force_zeros_for_empty_prompt``): zeros for the text,
    the same ``time_ids``."""
    return Conditioning(torch.zeros_like(positive.hidden),
                        {"text_embeds": torch.zeros_like(positive.added["text_embeds"]),
                         "time_ids": positive.added["time_ids"]})


SDXL = register_base_model(BaseModel(
    "sdxl", "SDXL", "Stable Diffusion XL base 1.0: 1024² native, CLIP ViT-L/14 + OpenCLIP ViT-bigG/14 "
                             "text encoders, pooled text and size micro-conditioning, VAE ×8",
    native_size=(1024, 1024), networks={"tiny": TINY_SDXL_UNET, "paper-arch": SDXL_UNET},
    vaes={"tiny": TINY_SDXL_VAE, "paper-arch": SDXL_VAE}, text_encoders=ENCODERS, scheduler=SDXL_SCHEDULER,
    repos=SDXL_REPOS, condition=condition, unconditional=unconditional,
    tokenizer="open_clip SimpleTokenizer (CLIP BPE, 77 tokens; padded with 49407, then 0, as SDXL's two tokenizers)",
    seed=30, origin=BUILT_IN, buckets=SDXL_BUCKETS,
    bucket_source="SDXL's 40 training buckets (Podell et al. 2023, App. I)", multi_aspect=True,
    # The tiny suite's SDXL steps: one item, 256 px high so each step is cheap, 1152 px wide so that md's
    # 128-latent views are two (a 144-latent row); bucket methods still run stage I at a ~1024² bucket, so
    # every SDXL step takes 2 steps per stage: the suite holds the algorithm (counts, settings), not quality.
    suite={"limit": 1, "size": (256, 1152), "steps": 2, "sr_steps": 2}, vae_upcast=True))
