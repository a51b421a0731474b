"""ARAD: multi-aspect LoRA training of the stage-I model (SPEC §1, Algorithm 1).

What one run does:

* every training image goes to the bucket whose ratio H/W is nearest its own (Eq. 1,
  :func:`datasets_build.sizes.nearest`) among the 3, 5 or 9 sizes of Table 3 / Table 5,
  and is resized to that size by scaling the short side to cover it and centre-cropping
  (our choice; nothing is distorted: :func:`datasets_build.sizes.cover_box`);
* batches are drawn by :class:`BucketBatchSampler`: one bucket per batch, every item
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
states) + tokenizer (transformers or open_clip); see :class:`TrainModels`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from datasets_build.images import fit
from datasets_build.sizes import Size, arad_buckets, cover_box, nearest

from . import lora as _lora
from .lora import DEFAULT_ADAPTER, base_identity, lora_state_dict, save_arad_lora

DEFAULT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
#: The Stable Diffusion training noise schedule (SD 1.x / 2.x).
NOISE_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
CHECKPOINTS = "checkpoints"
LOSSES = "losses.json"
STATE_VERSION = 1


class TrainingError(ValueError):
    """Bad training input: settings, data, models or a checkpoint that does not fit."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one ARAD LoRA run (defaults: the paper's, SPEC §1)."""

    buckets: int = 9  # 3, 5 or 9: the first rows of Table 5 (Table 3)
    bucket_divisor: int = 1  # bucket sides are divided by this (small models / smoke runs)
    rank: int = 4  # LoRA rank; alpha = rank
    learning_rate: float = 1e-4
    batch_size: int = 8  # per process and micro-step
    steps: int = 10_000  # optimizer steps
    gradient_accumulation: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16
    seed: int = 0
    max_grad_norm: float | None = None  # None: no clipping (the paper does not say)
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    checkpoint_every: int = 0  # 0: no intermediate checkpoints
    keep_checkpoints: int = 2  # newest checkpoints kept; 0 keeps all
    workers: int = 0  # DataLoader worker processes

    #: Fields that do not change the trained LoRA (and may differ when resuming).
    RUN_ONLY = ("steps", "checkpoint_every", "keep_checkpoints", "workers")

    @property
    def alpha(self) -> int:
        return self.rank

    def validate(self) -> None:
        """Raise :class:`TrainingError` for settings that cannot be trained."""
        try:
            arad_buckets(self.buckets)
        except ValueError as exc:  # anything but 3, 5, 9
            raise TrainingError(str(exc)) from exc
        for name in ("bucket_divisor", "rank", "batch_size", "steps", "gradient_accumulation"):
            if int(getattr(self, name)) < 1:
                raise TrainingError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise TrainingError(f"learning_rate must be positive, not {self.learning_rate}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise TrainingError(f"mixed_precision must be no, fp16 or bf16, not {self.mixed_precision!r}")
        if self.checkpoint_every < 0 or self.keep_checkpoints < 0 or self.workers < 0:
            raise TrainingError("checkpoint_every, keep_checkpoints and workers must not be negative")
        if not self.target_modules:
            raise TrainingError("target_modules must name at least one module")
        bucket_sizes(self.buckets, self.bucket_divisor)

    def identity(self) -> dict:
        """The settings that define the result (everything but :attr:`RUN_ONLY`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.RUN_ONLY}
        out["target_modules"] = list(self.target_modules)
        return out

    def to_dict(self) -> dict:
        out = asdict(self)
        out["target_modules"] = list(self.target_modules)
        return out


def bucket_sizes(count: int, divisor: int = 1) -> tuple[Size, ...]:
    """The ``count`` ARAD buckets (3, 5 or 9) with both sides divided by ``divisor``.

    The nine sides are multiples of 64, so any divisor of 64 keeps whole pixels and
    the exact ratios; others are refused.
    """
    try:
        sizes = arad_buckets(count)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    if divisor < 1 or any(s.height % divisor or s.width % divisor for s in sizes):
        raise TrainingError(f"bucket divisor {divisor} does not divide every bucket side (use a divisor of 64)")
    return tuple(Size(s.height // divisor, s.width // divisor) for s in sizes)


# --------------------------------------------------------------------------- models


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
    vae_cfg, unet_cfg = _lora.unwrap(models.vae).config, _lora.unwrap(models.unet).config
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


def _check_sizes(models: TrainModels, sizes: Sequence[Size]) -> None:
    vae_f, unet_f = scale_factors(models)
    need = vae_f * unet_f
    bad = [s.name for s in sizes if s.height % need or s.width % need]
    if bad:
        raise TrainingError(
            f"bucket sizes {', '.join(bad)} are not multiples of {need} (VAE x{vae_f}, UNet x{unet_f}); "
            "use a smaller --bucket-divisor"
        )


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Example:
    """One training pair: a caption and an image (a file, or in memory), with its size."""

    caption: str
    height: int
    width: int
    path: Path | None = None
    image: Image.Image | None = field(default=None, compare=False, repr=False)

    def load(self) -> Image.Image:
        if self.image is not None:
            return self.image
        with Image.open(self.path) as img:
            return img.convert("RGB")


@dataclass(frozen=True)
class TrainingData:
    """The training pairs, what they came from and a hash that identifies them."""

    examples: tuple[Example, ...]
    source: str
    sha256: str

    def __len__(self) -> int:
        return len(self.examples)

    def describe(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "count": len(self.examples)}


#: Ratios (H/W) the generated set draws from: the nine buckets' and some in between.
_GENERATED_RATIOS = (0.5, 0.53, 0.5625, 0.6, 0.625, 0.7, 0.75, 0.85, 1.0, 1.2, 1.333, 1.45, 1.6, 1.7, 1.778, 1.9, 2.0)
GENERATED_VERSION = 1


def generated_training_set(n: int, seed: int = 0, *, long_side: int = 128) -> TrainingData:
    """``n`` procedural image-caption pairs of several aspect ratios (offline, deterministic).

    The images are :func:`datasets_build.sources.synthetic.draw`'s gradients and shapes,
    captioned with what was drawn; ratios range from 0.5 to 2 (wide to tall), with the
    long side ``long_side`` pixels, so Eq. 1 spreads them over every bucket. The same
    (n, seed, long_side) give the same pixels.
    """
    from datasets_build.sources.synthetic import draw

    if n < 1:
        raise TrainingError(f"the generated set needs at least one image, not {n}")
    examples = []
    for k in range(n):
        rng = random.Random(f"arad-generated:{seed}:{k}")
        ratio = _GENERATED_RATIOS[(7 * k + seed) % len(_GENERATED_RATIOS)]  # 7 is coprime to 17: all ratios
        if ratio >= 1:
            h, w = long_side, max(8, round(long_side / ratio))
        else:
            h, w = max(8, round(long_side * ratio)), long_side
        image, caption = draw(Size(h, w), rng)
        examples.append(Example(caption, h, w, image=image))
    digest = hashlib.sha256(f"generated:v{GENERATED_VERSION}:{n}:{seed}:{long_side}".encode()).hexdigest()
    return TrainingData(tuple(examples), f"generated:{n}:seed={seed}:long_side={long_side}", digest)


def manifest_training_set(folder: str | os.PathLike) -> TrainingData:
    """The pairs of a finished ``datasets_build`` build (``arad-train``; any set works).

    The images there are already at their bucket size (for the bucket count the set
    was built with); the hash is that of ``manifest.parquet``, which the builder
    writes byte-reproducibly.
    """
    from datasets_build import iter_items
    from datasets_build.errors import DatasetError
    from datasets_build.manifest import MANIFEST

    folder = Path(folder)
    try:
        items = list(iter_items(folder))
    except DatasetError as exc:
        raise TrainingError(str(exc)) from exc
    if not items:
        raise TrainingError(f"{folder} holds no items")
    examples = tuple(Example(it.caption, it.height, it.width, path=it.image) for it in items)
    digest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    return TrainingData(examples, str(folder.absolute()), digest)


def manifest_sizes(folder: str | os.PathLike) -> list[str] | None:
    """The sizes a build was made for (``build_info.json``), or None if not recorded."""
    from datasets_build.builder import BUILD_INFO

    try:
        info = json.loads((Path(folder) / BUILD_INFO).read_text())
        return list(info["parameters"]["sizes"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None


def load_training_data(spec: str, cache_dir: str | os.PathLike = "data", *, long_side: int = 128) -> TrainingData:
    """``generated:N[:SEED]`` (procedural), or a build folder / data set name for ``datasets_build.resolve``."""
    if spec.startswith("generated"):
        parts = spec.split(":")
        try:
            n = int(parts[1]) if len(parts) > 1 else 64
            seed = int(parts[2]) if len(parts) > 2 else 0
        except ValueError as exc:
            raise TrainingError(f"--data {spec!r}: expected generated:N or generated:N:SEED") from exc
        return generated_training_set(n, seed, long_side=long_side)
    from datasets_build import resolve
    from datasets_build.errors import DatasetError

    try:
        folder = resolve(spec, Path(cache_dir))
    except DatasetError as exc:
        raise TrainingError(str(exc)) from exc
    return manifest_training_set(folder)


def assign_buckets(examples: Sequence[Example], sizes: Sequence[Size]) -> np.ndarray:
    """Eq. 1: each example's bucket index (nearest ratio H/W; ties to the first listed)."""
    ratios = np.array([e.height / e.width for e in examples], dtype=float)
    return nearest(ratios, tuple(sizes))


def cover_resize(image: Image.Image, size: Size) -> Image.Image:
    """Scale the short side to cover ``size`` and centre-crop (nothing distorted)."""
    return fit(image, size, cover_box(image.width, image.height, size))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image → float tensor [3, H, W] in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


class BucketDataset(torch.utils.data.Dataset):
    """Examples resized to their bucket: item i is (pixels [3, H, W] in [-1, 1], caption)."""

    def __init__(self, data: TrainingData, sizes: Sequence[Size]):
        self.examples = data.examples
        self.sizes = tuple(sizes)
        self.buckets = assign_buckets(self.examples, self.sizes)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        example = self.examples[i]
        return to_tensor(cover_resize(example.load(), self.sizes[self.buckets[i]])), example.caption


def collate(batch: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of indices that all share one bucket; every item once per epoch.

    The order of an epoch is a pure function of (seed, epoch): within each bucket the
    items are shuffled and cut into batches of ``batch_size`` (the last one of a bucket
    may be smaller unless ``drop_last``), then all batches are shuffled together.
    With ``num_replicas`` > 1 (several processes), the epoch's batches are dealt out in
    turn (padded by repeating its first batches so every process gets as many).

    Iterating yields the batches of :attr:`epoch` from position :attr:`start` (in
    batches of this process); :meth:`state_dict` / :meth:`load_state_dict` carry those
    two numbers, so a resumed run continues where it stopped.
    """

    def __init__(self, buckets: Sequence[int], batch_size: int, seed: int = 0, *, drop_last: bool = False,
                 num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise TrainingError(f"batch size must be at least 1, not {batch_size}")
        if not 0 <= rank < num_replicas:
            raise TrainingError(f"rank {rank} is not in [0, {num_replicas})")
        self.buckets = np.asarray(buckets, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0
        if len(self.global_batches(0)) == 0:
            raise TrainingError("no batch can be made (every bucket has fewer items than the batch size?)")

    def global_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch`` for all processes, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for bucket in np.unique(self.buckets):
            items = np.flatnonzero(self.buckets == bucket)
            items = items[rng.permutation(len(items))]
            for i in range(0, len(items), self.batch_size):
                chunk = items[i : i + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append([int(x) for x in chunk])
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of ``epoch``."""
        batches = self.global_batches(epoch)
        total = math.ceil(len(batches) / self.num_replicas) * self.num_replicas
        padded = batches + batches[: total - len(batches)]
        return padded[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return len(self.batches(self.epoch)) - self.start

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.start :]

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise TrainingError(f"sampler state is for seed {state['seed']}, not {self.seed}")
        self.set_epoch(state["epoch"], state["start"])


# --------------------------------------------------------------------------- loss


def noise_scheduler():
    """The SD training schedule: DDPM, scaled_linear 0.00085–0.012, 1000 steps, eps-prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**NOISE_SCHEDULE, prediction_type="epsilon")


def _latents(vae, pixels: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    dist = vae.encode(pixels).latent_dist
    z = dist.sample(generator=generator) if generator is not None else dist.mode()
    shift = getattr(vae.config, "shift_factor", None)
    if shift:
        z = z - shift
    return z * vae.config.scaling_factor


def diffusion_loss(unet, scheduler, latents: torch.Tensor, hidden: torch.Tensor, noise: torch.Tensor,
                   timesteps: torch.Tensor) -> torch.Tensor:
    """MSE between the UNet's eps-prediction and the noise, for given (noise, t)."""
    noisy = scheduler.add_noise(latents, noise, timesteps)
    pred = unet(noisy, timesteps, encoder_hidden_states=hidden).sample
    return F.mse_loss(pred.float(), noise.float())


def fixed_loss(models: Any, data: TrainingData, sizes: Sequence[Size], *, unet: torch.nn.Module | None = None,
               seed: int = 1234, repeats: int = 2) -> float:
    """The mean eps-MSE over fixed (noise, t) pairs: one per example and repeat.

    Latents are the VAE posterior means, noise and timesteps come from ``seed``, so two
    calls with the same arguments compare UNets (e.g. before and after training) on
    exactly the same problems.
    """
    m = as_train_models(models)
    unet = unet if unet is not None else m.unet
    device = next(unet.parameters()).device
    dtype = next(p for n, p in unet.named_parameters() if "lora_" not in n).dtype
    dataset = BucketDataset(data, sizes)
    scheduler = noise_scheduler()
    gen = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    was_training = unet.training
    unet.eval()
    try:
        with torch.no_grad():
            for i in range(len(dataset)):
                pixels, caption = dataset[i]
                latents = _latents(m.vae, pixels[None].to(device, _dtype(m.vae)), None).to(dtype)
                hidden = encode_captions(m, [caption], device).to(dtype)
                for _ in range(repeats):
                    noise = torch.randn(latents.shape, generator=gen).to(device, dtype)
                    t = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=gen).to(device)
                    total += float(diffusion_loss(unet, scheduler, latents, hidden, noise, t))
                    count += 1
    finally:
        unet.train(was_training)
    return total / count


def _dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """The LoRA folder (``None`` if stopped early), steps done and the loss of every step."""

    path: Path | None
    steps: int
    losses: list[float]
    finished: bool
    unet: torch.nn.Module | None = field(default=None, repr=False)


def versions() -> dict:
    out = {}
    for pkg in ("torch", "diffusers", "peft", "accelerate", "transformers"):
        try:
            out[pkg] = _metadata.version(pkg)
        except _metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _checkpoints(output_dir: Path) -> list[Path]:
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint under ``output_dir/checkpoints``, or None."""
    found = _checkpoints(Path(output_dir))
    return found[-1] if found else None


def make_accelerator(mixed_precision: str = "no", gradient_accumulation: int = 1):
    """An ``accelerate.Accelerator`` with this mixed precision and gradient accumulation.

    accelerate keeps one process-wide state; a single-process state made earlier with
    another mixed precision (an earlier run in the same process) is reset first. Under
    ``accelerate launch`` / ``torchrun`` the launcher's state is used as it is.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, DistributedType

    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision", mixed_precision) != mixed_precision:
        if shared.get("distributed_type", DistributedType.NO) != DistributedType.NO:
            raise TrainingError(
                f"accelerate is already set up with mixed precision {shared.get('_mixed_precision')!r}, "
                f"not {mixed_precision!r}"
            )
        AcceleratorState._reset_state()
    return Accelerator(gradient_accumulation_steps=gradient_accumulation, mixed_precision=mixed_precision)


def add_lora(unet: torch.nn.Module, config: TrainConfig, adapter_name: str = DEFAULT_ADAPTER) -> list[torch.nn.Parameter]:
    """Freeze ``unet`` and add a trainable LoRA adapter on ``config.target_modules``; return its parameters.

    ``lora_A`` starts Gaussian (from ``config.seed``), ``lora_B`` at zero, so the
    adapted UNet starts equal to the base.
    """
    from peft import LoraConfig

    if adapter_name in (getattr(unet, "peft_config", None) or {}):
        raise TrainingError(f"the UNet already has an adapter named {adapter_name!r}")
    unet.requires_grad_(False)
    state = torch.get_rng_state()
    torch.manual_seed(config.seed)
    try:
        unet.add_adapter(
            LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian",
                       target_modules=list(config.target_modules)),
            adapter_name=adapter_name,
        )
    except ValueError as exc:
        raise TrainingError(f"cannot add LoRA on {list(config.target_modules)}: {exc}") from exc
    finally:
        torch.set_rng_state(state)
    params = [p for n, p in unet.named_parameters() if f".{adapter_name}." in n and "lora_" in n]
    for p in unet.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    if not params:
        raise TrainingError(f"no LoRA parameters were created on {list(config.target_modules)}")
    return params


def train_arad(
    models: Any,
    data: TrainingData,
    output_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    *,
    resume: bool = False,
    accelerator=None,
    stop_at: int | None = None,
    log: Callable[[str], None] | None = print,
    extra_metadata: dict | None = None,
) -> TrainResult:
    """Train an ARAD LoRA on ``data`` and save it as a LoRA folder in ``output_dir``.

    ``models``: see :func:`as_train_models`. The adapter (named ``"arad"``) is added to
    ``models.unet`` in place, and the UNet is returned trained in the result; copy the
    UNet first if it must stay untouched. With ``resume``, training continues from the
    newest checkpoint in ``output_dir/checkpoints`` (or starts afresh if there is none);
    the checkpoint must have been made with the same settings, data and base model (only
    ``steps`` and the other :attr:`TrainConfig.RUN_ONLY` fields may differ).
    ``stop_at`` ends the run after that many steps without writing the LoRA (a planned
    interruption; checkpoints are written as usual). Returns a :class:`TrainResult`.
    """
    config.validate()
    say = log or (lambda _msg: None)
    m = as_train_models(models)
    sizes = bucket_sizes(config.buckets, config.bucket_divisor)
    _check_sizes(m, sizes)
    output_dir = Path(output_dir)
    if len(data) == 0:
        raise TrainingError("no training examples")
    if not resume and (_checkpoints(output_dir) or (output_dir / _lora.LORA_METADATA).exists()):
        raise TrainingError(
            f"{output_dir} already holds a run (a LoRA or checkpoints); resume it (--resume) or use another folder"
        )

    if accelerator is None:
        accelerator = make_accelerator(config.mixed_precision, config.gradient_accumulation)
    elif accelerator.gradient_accumulation_steps != config.gradient_accumulation:
        raise TrainingError(
            f"the accelerator accumulates {accelerator.gradient_accumulation_steps} steps, "
            f"the config {config.gradient_accumulation}"
        )
    device = accelerator.device
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)

    base = base_identity(m.unet, m.name)  # before the adapter, on the untouched weights
    dataset = BucketDataset(data, sizes)
    identity = {
        "state_version": STATE_VERSION,
        "config": config.identity(),
        "base_fingerprint": base["fingerprint"],
        "base_weights_probe": base["weights_probe"],
        "data_sha256": data.sha256,
        "num_processes": accelerator.num_processes,
    }

    unet = m.unet
    params = add_lora(unet, config)
    if weight_dtype != torch.float32:
        from diffusers.training_utils import cast_training_params

        unet.to(dtype=weight_dtype)
        cast_training_params(unet, dtype=torch.float32)  # the LoRA weights train in fp32
    for module in (m.vae, m.text_encoder):
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
            module.eval()
            module.to(device)
            if weight_dtype != torch.float32:
                module.to(dtype=weight_dtype)
    unet.train()
    # frozen parts may come in any precision (e.g. fp16 weights with --mixed-precision no):
    # feed each module its own dtype
    unet_dtype = next(p for n, p in unet.named_parameters() if "lora_" not in n).dtype
    vae_dtype = _dtype(m.vae)
    optimizer = torch.optim.Adam(params, lr=config.learning_rate, weight_decay=0.0)
    unet_p, optimizer = accelerator.prepare(unet, optimizer)
    bare_unet = accelerator.unwrap_model(unet_p)

    sampler = BucketBatchSampler(dataset.buckets, config.batch_size, config.seed,
                                 num_replicas=accelerator.num_processes, rank=accelerator.process_index)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + 7919 * accelerator.process_index)
    step, losses = 0, []
    epoch, start = 0, 0

    if resume:
        ckpt = latest_checkpoint(output_dir)
        if ckpt is None:
            say(f"no checkpoint in {output_dir / CHECKPOINTS}; starting from step 0")
        else:
            step, epoch, start, losses = _load_checkpoint(ckpt, identity, bare_unet, optimizer, generator, accelerator)
            say(f"resumed from {ckpt} at step {step}")
    if step >= config.steps:
        say(f"already at step {step} of {config.steps}")

    scheduler = noise_scheduler()
    loader_kwargs = {"num_workers": config.workers, "persistent_workers": False} if config.workers else {}
    micro: list[torch.Tensor] = []
    t0 = time.time()
    stopped = False
    while step < config.steps and not stopped:
        sampler.set_epoch(epoch, start)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, **loader_kwargs)
        for pixels, captions in loader:
            start += 1
            with accelerator.accumulate(unet_p):
                pixels = pixels.to(device, dtype=vae_dtype)
                with torch.no_grad():
                    latents = _latents(m.vae, pixels, generator).to(unet_dtype)
                    hidden = encode_captions(m, captions, device).to(unet_dtype)
                noise = torch.randn(latents.shape, generator=generator).to(device, unet_dtype)
                timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],),
                                          generator=generator).to(device)
                with accelerator.autocast():
                    loss = diffusion_loss(unet_p, scheduler, latents, hidden, noise, timesteps)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            micro.append(loss.detach())
            if not accelerator.sync_gradients:
                continue
            step += 1
            step_loss = accelerator.gather(torch.stack(micro).mean()[None]).mean()
            losses.append(float(step_loss))
            micro = []
            if step % max(1, min(100, config.steps // 20)) == 0 or step == config.steps:
                rate = (time.time() - t0) / max(1, step)
                say(f"step {step}/{config.steps} loss {losses[-1]:.5f} ({rate:.2f} s/step)")
            last = step >= config.steps
            if config.checkpoint_every and (step % config.checkpoint_every == 0 or last):
                _save_checkpoint(output_dir, step, epoch, start, identity, bare_unet, optimizer, generator,
                                 losses, accelerator, config.keep_checkpoints)
            if stop_at is not None and step >= stop_at and not last:
                stopped = True
                break
            if last:
                break
        else:
            epoch, start = epoch + 1, 0

    if stopped:
        say(f"stopped at step {step} (stop_at={stop_at})")
        return TrainResult(None, step, losses, False, bare_unet)

    accelerator.wait_for_everyone()
    path = None
    if accelerator.is_main_process:
        meta = {
            "base": base,
            "lora": {"rank": config.rank, "alpha": config.alpha, "target_modules": list(config.target_modules),
                     "adapter_name": DEFAULT_ADAPTER, "peft_layout": "unet.<module>.lora_A/lora_B.weight"},
            "training": {
                **config.to_dict(),
                "steps_done": step,
                "bucket_sizes": [s.name for s in sizes],
                "bucket_counts": {sizes[b].name: int((dataset.buckets == b).sum()) for b in range(len(sizes))},
                "resize": "scale short side to cover, centre crop (bicubic)",
                "optimizer": "Adam (no weight decay), constant learning rate",
                "loss": "eps-prediction MSE",
                "noise_schedule": {"scheduler": "DDPMScheduler", **NOISE_SCHEDULE},
                "num_processes": accelerator.num_processes,
                "effective_batch": config.batch_size * config.gradient_accumulation * accelerator.num_processes,
            },
            "data": data.describe(),
            "loss": _loss_summary(losses),
            "versions": versions(),
        }
        if extra_metadata:
            meta.update(extra_metadata)
        path = save_arad_lora(bare_unet, output_dir, meta)
        tmp = output_dir / f".{LOSSES}.tmp"
        tmp.write_text(json.dumps(losses))
        os.replace(tmp, output_dir / LOSSES)
        say(f"saved LoRA to {path}")
    accelerator.wait_for_everyone()
    return TrainResult(path if path is not None else output_dir, step, losses, True, bare_unet)


def _loss_summary(losses: list[float]) -> dict:
    if not losses:
        return {}
    tail = losses[-min(100, len(losses)) :]
    head = losses[: min(100, len(losses))]
    return {"first": losses[0], "last": losses[-1], "mean_first_100": float(np.mean(head)),
            "mean_last_100": float(np.mean(tail))}


def _save_checkpoint(output_dir: Path, step: int, epoch: int, start: int, identity: dict, unet, optimizer,
                     generator: torch.Generator, losses: list[float], accelerator, keep: int) -> None:
    """Write ``checkpoints/step-N`` atomically: LoRA, optimizer, step, sampler position, RNG states."""
    from safetensors.torch import save_file

    root = output_dir / CHECKPOINTS
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save({"generator": generator.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               tmp / f"rng-{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        save_file(lora_state_dict(unet), str(tmp / "lora.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        state = {"step": step, "sampler": {"epoch": epoch, "start": start}, "identity": identity, "losses": losses}
        (tmp / "state.json").write_text(json.dumps(state))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        if keep:
            for old in _checkpoints(output_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _load_checkpoint(ckpt: Path, identity: dict, unet, optimizer, generator: torch.Generator, accelerator):
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = json.loads((ckpt / "state.json").read_text())
    saved = state.get("identity", {})
    if saved != identity:
        diff = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        if "config" in diff:
            a, b = saved.get("config", {}), identity["config"]
            diff = [f"config.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)] + [
                d for d in diff if d != "config"]
        raise TrainingError(
            f"checkpoint {ckpt} was made with other settings, data or base model ({'; '.join(map(str, diff))}); "
            "use another output folder or the same settings"
        )
    weights = load_file(str(ckpt / "lora.safetensors"))
    result = set_peft_model_state_dict(unet, weights, adapter_name=DEFAULT_ADAPTER)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise TrainingError(f"checkpoint {ckpt} has LoRA keys this UNet lacks, e.g. {unexpected[:3]}")
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=False))
    rng_file = ckpt / f"rng-{accelerator.process_index}.pt"
    rng = torch.load(rng_file, map_location="cpu", weights_only=False)
    generator.set_state(rng["generator"])
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    sampler = state["sampler"]
    return int(state["step"]), int(sampler["epoch"]), int(sampler["start"]), list(state["losses"])


# --------------------------------------------------------------------------- tiny LoRA (tests, smoke runs)

TINY_DEFAULTS = {"examples": 16, "buckets": 9, "steps": 12, "batch_size": 4, "learning_rate": 1e-3, "rank": 4, "seed": 0}


def tiny_config(models: Any, **overrides) -> TrainConfig:
    """The tiny run's settings: nine buckets (or ``buckets=3|5``, Table 3) divided by :func:`smallest_divisor`, a few steps."""
    settings = {**TINY_DEFAULTS, **overrides}
    settings.pop("examples")
    return TrainConfig(bucket_divisor=smallest_divisor(models), **settings)


def tiny_arad_lora(models: Any, cache_dir: str | os.PathLike, **overrides) -> Path:
    """A small ARAD LoRA for ``models`` trained on generated data, cached; return its folder.

    Meant for the ``tiny`` profile (random-weight, small configs) and smoke runs: nine
    buckets with their sides divided by :func:`smallest_divisor` (2 for the tiny profile
    of :mod:`baselines.models`, VAE ×8 / UNet ×4: 256×256 … 512×256 pixels; 16 for a
    VAE ×2 / UNet ×2: 32×32 … 64×32; this is not the paper's setting),
    :data:`TINY_DEFAULTS` (16 generated images, 12 steps of batch 4, learning rate
    1e-3 so a few steps move the weights), overridable by keyword. The folder is
    ``cache_dir/arad-lora-tiny-<key>``, key = hash of (base model identity, settings,
    data); a cached folder is reused. ``models.unet`` is not modified (a copy is trained).
    """
    m = as_train_models(models)
    settings = {**TINY_DEFAULTS, **overrides}
    config = tiny_config(m, **overrides)
    sizes = bucket_sizes(config.buckets, config.bucket_divisor)
    data = generated_training_set(settings["examples"], config.seed, long_side=max(max(s.height, s.width) for s in sizes))
    base = base_identity(m.unet, m.name)
    key_src = {"base": {k: base[k] for k in ("fingerprint", "weights_probe", "name")},
               "config": config.identity(), "steps": config.steps, "data": data.sha256, "version": _lora.FORMAT_VERSION}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir)
    out = cache_dir / f"arad-lora-tiny-{key}"
    try:
        _lora.read_arad_lora(out)
        return out
    except _lora.NotALoraError:
        pass
    tmp = cache_dir / f".arad-lora-tiny-{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    # train on fp32 copies: the caller's models stay as they are, whatever their precision
    own_text = m.text_encoder is not None and m.tokenizer is not None
    copy_models = TrainModels(copy.deepcopy(m.unet).float(), _copy(m.vae), _copy(m.text_encoder), m.tokenizer,
                              m.name, None if own_text else m.encode)
    train_arad(copy_models, data, tmp, config, log=None,
               extra_metadata={"tiny": {"key": key, "note": "tiny smoke LoRA on generated data, not the paper's run"}})
    try:
        os.replace(tmp, out)
    except OSError:  # another process cached the same LoRA first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _copy(module):
    """A deep copy of a module (training moves and freezes it), or the object itself if it cannot be copied."""
    try:
        copied = copy.deepcopy(module)
        return copied.float() if isinstance(copied, torch.nn.Module) else copied
    except Exception:  # a callable that does not copy: it is only called, never changed
        return module
