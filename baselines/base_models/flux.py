"""FLUX.1 [dev] and [schnell] as base models: their published configs, tiny stand-ins and conditioning.

As ``FluxPipeline`` conditions its transformer: CLIP ViT-L/14 (``CLIPTextModel``) gives the pooled
text (``pooled_projections``: its pooler output, the final hidden state at the end-of-text token)
and T5 v1.1 XXL's encoder (``T5EncoderModel``) the token sequence the joint attention reads
(``encoder_hidden_states``: its last hidden state, 512 tokens on dev, 256 on schnell). Both are
guidance-distilled: there is no unconditional branch. Dev embeds a guidance scale (3.5 by
default, its pipeline's); schnell has no guidance embedding and is sampled in few steps.
Stage I samples them by flow matching on the 2x2-packed latent (:mod:`baselines.flow_matching`).

Tokens: CLIP's ids are open_clip's BPE padded with end-of-text, as SDXL's first tokenizer. T5's
come from a SentencePiece vocabulary that no installed package ships: on ``paper`` they are the
published folder's ``tokenizer_2``; on the random-weight profiles, whose weights give words no
meaning, a stand-in folds CLIP's BPE ids of the prompt into T5's vocabulary, then T5's
end-of-sequence (1) and padding (0), the same shapes and cost (``run.json`` says which).

Buckets: Black Forest Labs publishes no bucket table (FLUX was trained at mixed sizes and ratios
around 1 MP); stage I's "bucket" rule uses SDXL's 40 ~1 MP buckets, whose sides, multiples of 64,
are whole tokens.
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import torch
from diffusers import FluxTransformer2DModel
from transformers import CLIPTextModel, T5EncoderModel

from baselines.base_models.registry import BaseModel, Conditioning, TextEncoder, register_base_model, token_ids
from baselines.base_models.sdxl import CLIP_L14_TEXT, END_OF_TEXT, SDXL_BUCKETS, TINY_SDXL_TEXT
from baselines.flow_matching import FLOW_MATCHING
from baselines.origins import BUILT_IN

FLUX_DEV_REPOS = ("black-forest-labs/FLUX.1-dev",)  # a mirror goes after it ($ASD_FLUX_REPO names one)
FLUX_SCHNELL_REPOS = ("black-forest-labs/FLUX.1-schnell",)
T5_END, T5_PAD, T5_SPECIAL = 1, 0, 3  # T5's </s> and <pad>; ids below 3 are special (<unk> = 2)

#: transformer/config.json of FLUX.1 [dev] (schnell's differs only in ``guidance_embeds``): 19 double-stream
#: and 38 single-stream blocks, 24 heads of 128, rotary axes (16, 56, 56) over (text, row, column).
FLUX_TRANSFORMER = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56))
FLUX_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=16, layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
    use_post_quant_conv=False, force_upcast=True)
#: text_encoder_2/config.json: T5 v1.1 XXL's encoder (gated GELU; 24 layers of 64 heads).
T5_XXL = dict(
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6, tie_word_embeddings=False)
#: scheduler/scheduler_config.json (FlowMatchEulerDiscreteScheduler): dev shifts with the image's token count...
FLUX_DEV_SCHEDULER = dict(
    num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_image_seq_len=256,
    max_image_seq_len=4096, base_shift=0.5, max_shift=1.15)
#: ...schnell does not.
FLUX_SCHNELL_SCHEDULER = dict(FLUX_DEV_SCHEDULER, shift=1.0, use_dynamic_shifting=False)

#: FLUX's layout (double- and single-stream blocks, rotary axes summing to the head width, the guidance
#: embedding, 16-channel VAE packed to 64-channel tokens) at tiny widths.
TINY_FLUX_TRANSFORMER = dict(
    FLUX_TRANSFORMER, num_layers=2, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
    joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 6, 6))
TINY_FLUX_VAE = dict(
    FLUX_VAE, layers_per_block=1, block_out_channels=(4, 4, 8, 8), norm_num_groups=4, sample_size=128,
    mid_block_add_attention=False)
TINY_T5 = dict(T5_XXL, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)


def t5_ids(models, prompts: list[str], length: int) -> torch.Tensor:
    """T5's ids of ``prompts``, ``length`` long: the published tokenizer where the folder gave one, else the
    random-weight profiles' stand-in (the module's docstring)."""
    tokenizer = models.file_tokenizers.get("text_encoder_2")
    if tokenizer is not None:
        return tokenizer(prompts, padding="max_length", max_length=length, truncation=True,
                         return_tensors="pt").input_ids
    vocabulary = models.text_encoder_2.config.vocab_size - T5_SPECIAL
    rows = [[T5_SPECIAL + i % vocabulary for i in models.tokenizer.encode(p)][:length - 1] + [T5_END]
            for p in prompts]
    return torch.tensor([row + [T5_PAD] * (length - len(row)) for row in rows])


def condition(models, prompts: list[str], size: tuple[int, int], *, text_tokens: int) -> Conditioning:
    """T5's last hidden state of ``text_tokens`` tokens, and CLIP's pooled output as ``pooled_projections``."""
    clip = models.text_encoder(token_ids(models.tokenizer, prompts, END_OF_TEXT).to(models.text_encoder.device))
    t5 = models.text_encoder_2(t5_ids(models, prompts, text_tokens).to(models.text_encoder_2.device))
    return Conditioning(t5.last_hidden_state, {"pooled_projections": clip.pooler_output})


def no_unconditional(positive: Conditioning) -> None:
    """FLUX dev and schnell are guidance-distilled: no unconditional branch."""
    return None


ENCODERS = (
    TextEncoder(CLIPTextModel, "text_encoder", {"tiny": TINY_SDXL_TEXT, "paper-arch": CLIP_L14_TEXT},
                pad_id=END_OF_TEXT),
    TextEncoder(T5EncoderModel, "text_encoder_2", {"tiny": TINY_T5, "paper-arch": T5_XXL}, pad_id=T5_PAD,
                tokenizer="tokenizer_2"))
TOKENIZER = ("CLIP: open_clip SimpleTokenizer (CLIP BPE, 77 tokens, padded with 49407); T5: the folder's "
             "tokenizer_2 on paper, else CLIP's BPE ids folded into T5's vocabulary (random weights)")


def _flux(name: str, title: str, summary: str, guidance_embeds: bool, scheduler: dict, repos: tuple[str, ...],
          text_tokens: int, guidance: float, seed: int, suite: Optional[dict]) -> BaseModel:
    networks = {profile: dict(config, guidance_embeds=guidance_embeds)
                for profile, config in (("tiny", TINY_FLUX_TRANSFORMER), ("paper-arch", FLUX_TRANSFORMER))}
    return register_base_model(BaseModel(
        name, title, summary, native_size=(1024, 1024), networks=networks,
        vaes={"tiny": TINY_FLUX_VAE, "paper-arch": FLUX_VAE}, text_encoders=ENCODERS, scheduler=scheduler,
        repos=repos, condition=partial(condition, text_tokens=text_tokens), unconditional=no_unconditional,
        tokenizer=f"{TOKENIZER}; T5 {text_tokens} tokens", seed=seed, origin=BUILT_IN, buckets=SDXL_BUCKETS,
        bucket_source="SDXL's 40 ~1 MP buckets (FLUX publishes none)", multi_aspect=True,
        suite=suite, vae_upcast=False, guidance=guidance,
        network=FluxTransformer2DModel, network_subfolder="transformer", sampling=FLOW_MATCHING,
        half_dtype="bf16"))  # FLUX's activations overflow fp16; its pipeline runs bf16


FLUX_DEV = _flux("flux", "FLUX.1 [dev]", "FLUX.1 [dev]: a 12 B flow-matching transformer on 2x2-packed 16-channel "
                 "latents, 1024² native, CLIP ViT-L/14 pooled + T5 XXL text, embedded guidance", True,
                 FLUX_DEV_SCHEDULER, FLUX_DEV_REPOS, text_tokens=512, guidance=3.5, seed=40,
                 # one item, 256 px high and 1152 wide (md: two 64-token views), 2 steps per stage: the algorithm
                 suite={"limit": 1, "size": (256, 1152), "steps": 2, "sr_steps": 2})
FLUX_SCHNELL = _flux("flux-schnell", "FLUX.1 [schnell]", "FLUX.1 [schnell]: FLUX.1's transformer distilled for "
                     "1-4 steps, no guidance embedding, unshifted schedule", False, FLUX_SCHNELL_SCHEDULER,
                     FLUX_SCHNELL_REPOS, text_tokens=256, guidance=0.0, seed=50,
                     suite=None)  # dev's steps hold the code both run (schnell: no guidance embedding, fixed shift)
