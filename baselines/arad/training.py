"""The ARAD training loop on accelerate: a LoRA on the frozen UNet, trained bucket by bucket."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from baselines.vae_tiling import encode_latents

from .. import lora as _lora
from ..lora import DEFAULT_ADAPTER, base_identity, save_arad_lora
from .buckets import BucketBatchSampler, BucketDataset
from .checkpoints import CHECKPOINTS, STATE_VERSION, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig, TrainingError, bucket_sizes
from .data import TrainingData
from .loss import NOISE_SCHEDULE, diffusion_loss, module_dtype, noise_scheduler
from .train_models import as_train_models, check_sizes, encode_captions

LOSSES = "losses.json"


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
    check_sizes(m, sizes)
    output_dir = Path(output_dir)
    if len(data) == 0:
        raise TrainingError("no training examples")
    if not resume and (list_checkpoints(output_dir) or (output_dir / _lora.LORA_METADATA).exists()):
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
    vae_dtype = module_dtype(m.vae)
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
            step, epoch, start, losses = load_checkpoint(ckpt, identity, bare_unet, optimizer, generator, accelerator)
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
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, **loader_kwargs)
        for pixels, captions in loader:
            start += 1
            with accelerator.accumulate(unet_p):
                pixels = pixels.to(device, dtype=vae_dtype)
                with torch.no_grad():
                    latents = encode_latents(m.vae, pixels, generator).to(unet_dtype)
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
                save_checkpoint(output_dir, step, epoch, start, identity, bare_unet, optimizer, generator,
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
