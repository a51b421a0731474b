"""Tiny models and one shared training run for the ARAD tests (no tests in here).

The models are random-weight diffusers / transformers modules of the smallest useful
configs (UNet 8/16 channels, VAE x2, a one-layer CLIP text model with open_clip's
offline tokenizer), so a training step takes tens of milliseconds on one CPU thread.
"""

from __future__ import annotations

import atexit
import copy
import functools
import shutil
import tempfile
from pathlib import Path

import torch

from helpers import one_thread

from baselines.arad import TrainConfig, TrainModels, generated_training_set, train_arad

CROSS_DIM = 16


def tiny_unet(seed: int = 0, cross_attention_dim: int = CROSS_DIM):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        sample_size=8,
        attention_head_dim=8,
        norm_num_groups=8,
    )


@functools.cache
def _frozen_parts():
    import open_clip
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(100)
    vae = AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=CROSS_DIM, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=77,
                                        projection_dim=CROSS_DIM))
    return vae.eval(), text.eval(), open_clip.SimpleTokenizer()


def tiny_models(seed: int = 0, name: str = "tiny-test") -> TrainModels:
    """A fresh UNet (weights from ``seed``) with copies of the shared VAE and text encoder."""
    vae, text, tokenizer = _frozen_parts()
    return TrainModels(tiny_unet(seed), copy.deepcopy(vae), copy.deepcopy(text), tokenizer, name)


def scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="arad-test-"))
    atexit.register(shutil.rmtree, path, True)
    return path


#: The shared run: 8 generated images over the nine buckets / 16, lr 1e-2 so that 24
#: steps visibly lower the loss, checkpoints every 8 steps (all kept).
RUN_CONFIG = TrainConfig(bucket_divisor=16, batch_size=4, steps=24, learning_rate=1e-2, checkpoint_every=8,
                         keep_checkpoints=0)


def run_data():
    return generated_training_set(8, seed=0, long_side=64)


@functools.cache
def trained_run():
    """(models after training, untouched copy of the base UNet, TrainResult) of the shared run."""
    models = tiny_models(0)
    base_unet = copy.deepcopy(models.unet)
    vae_state = {k: v.clone() for k, v in models.vae.state_dict().items()}
    text_state = {k: v.clone() for k, v in models.text_encoder.state_dict().items()}
    with one_thread():
        result = train_arad(models, run_data(), scratch() / "lora", RUN_CONFIG, log=None)
    return models, base_unet, result, vae_state, text_state
