"""ARAD: multi-aspect LoRA training of the stage-I model (docs/design.md, "Stage I"; Algorithm 1).

What one run does:

* every training image goes to the bucket whose ratio H/W is nearest its own (Eq. 1,
  :func:`datasets_build.sizes.nearest`) among the 3, 5 or 9 sizes of Table 3 / Table 5,
  and is resized to that size by scaling the short side to cover it and centre-cropping
  (our choice; nothing is distorted: :func:`datasets_build.sizes.cover_box`);
* batches are drawn by :class:`.buckets.BucketBatchSampler`: one bucket per batch, every item
  once per epoch, order a pure function of (seed, epoch);
* a peft LoRA (rank 4 by default, alpha = rank) on the UNet attention projections
  ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` is the only thing trained; UNet, VAE and
  text encoder stay frozen;
* loss: MSE between the UNet's output and the noise (eps-prediction), noise added with
  the Stable Diffusion schedule (DDPM, scaled_linear 0.00085–0.012, 1000 steps);
  latents = ``vae.encode(x).latent_dist.sample() * scaling_factor``, text from the
  captions through the frozen text encoder;
* Adam (no weight decay), learning rate 1e-4 constant, batch 8, 10,000 steps;
* everything runs through ``accelerate.Accelerator`` (device placement, gradient
  accumulation, mixed precision), so ``accelerate launch -m baselines.train_arad``
  runs the same command on several GPUs;
* checkpoints (LoRA, optimizer, step, sampler position, RNG states) every N steps;
  a resumed run gives the same LoRA as an uninterrupted one (bit for bit on CPU).

All randomness of a step (VAE posterior sample, noise, timesteps) comes from one
seeded ``torch.Generator`` on the CPU, so results do not depend on the device's RNG.

The models are any diffusers ``UNet2DConditionModel`` + ``AutoencoderKL`` + text
encoder (a transformers ``CLIPTextModel`` or any module mapping token ids to hidden
states) + tokenizer (transformers or open_clip); see :class:`.train_models.TrainModels`.

The modules, in the order a run uses them: :mod:`.config` (settings, bucket sizes),
:mod:`.data` (training pairs), :mod:`.train_models` (the models and their size checks),
:mod:`.buckets` (Eq. 1 and the sampler), :mod:`.loss`, :mod:`.training` (the loop),
:mod:`.checkpoints` (saving and resuming), :mod:`.tiny` (the cached smoke LoRA).
"""

from .buckets import BucketBatchSampler, BucketDataset, assign_buckets, cover_resize, to_tensor
from .checkpoints import latest_checkpoint
from .config import DEFAULT_TARGET_MODULES, TrainConfig, TrainingError, bucket_sizes
from .data import Example, TrainingData, generated_training_set, load_training_data, manifest_sizes, manifest_training_set
from .loss import NOISE_SCHEDULE, diffusion_loss, fixed_loss, noise_scheduler
from .tiny import TINY_DEFAULTS, tiny_arad_lora, tiny_config
from .train_models import TrainModels, as_train_models, encode_captions, smallest_divisor
from .training import TrainResult, add_lora, make_accelerator, train_arad

__all__ = [
    "BucketBatchSampler", "BucketDataset", "DEFAULT_TARGET_MODULES", "Example", "NOISE_SCHEDULE", "TINY_DEFAULTS",
    "TrainConfig", "TrainModels", "TrainResult", "TrainingData", "TrainingError", "add_lora", "as_train_models",
    "assign_buckets", "bucket_sizes", "cover_resize", "diffusion_loss", "encode_captions", "fixed_loss",
    "generated_training_set", "latest_checkpoint", "load_training_data", "make_accelerator", "manifest_sizes",
    "manifest_training_set", "noise_scheduler", "smallest_divisor", "tiny_arad_lora", "tiny_config", "to_tensor",
    "train_arad",
]
