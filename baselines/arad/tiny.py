"""A small cached ARAD LoRA for the tiny profile and smoke runs (not the paper's run)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from .. import lora as _lora
from ..lora import base_identity
from .config import TrainConfig, bucket_sizes
from .data import generated_training_set
from .train_models import TrainModels, as_train_models, smallest_divisor
from .training import train_arad

TINY_DEFAULTS = {"examples": 16, "buckets": 9, "steps": 6, "batch_size": 2, "learning_rate": 1e-3, "rank": 4, "seed": 0}


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
    :data:`TINY_DEFAULTS` (16 generated images, 6 steps of batch 2, learning rate
    1e-3 so a few steps move the weights; 25 s on one CPU thread), overridable by keyword. The folder is
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
    cache_dir.mkdir(parents=True, exist_ok=True)
    # processes sharing a cache (parallel runs, test workers) train it once: the others wait, then read it
    with FileLock(cache_dir / f".arad-lora-tiny-{key}.lock"):
        return _cached_or_trained(m, data, config, key, out)


def _cached_or_trained(m: TrainModels, data, config: TrainConfig, key: str, out: Path) -> Path:
    """``out`` if it holds the LoRA already, else the LoRA trained there (through a temporary folder)."""
    try:
        _lora.read_arad_lora(out)
        return out
    except _lora.NotALoraError:
        pass
    cache_dir = out.parent
    tmp = cache_dir / f".arad-lora-tiny-{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    # train on fp32 copies: the caller's models stay as they are, whatever their precision
    own_text = m.text_encoder is not None and m.tokenizer is not None
    copy_models = TrainModels(copy.deepcopy(m.unet).float(), _copy(m.vae), _copy(m.text_encoder), m.tokenizer,
                              m.name, None if own_text else m.encode)
    with _one_process():
        train_arad(copy_models, data, tmp, config, log=None,
                   extra_metadata={"tiny": {"key": key, "note": "tiny smoke LoRA on generated data, not the paper's run"}})
    try:
        os.replace(tmp, out)
    except OSError:  # another process cached the same LoRA first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


@contextmanager
def _one_process():
    """accelerate's state of a one-process run on this process's device, while the tiny LoRA trains.

    The LoRA is cached by its settings alone, so it must not depend on how a run was launched:
    under ``accelerate launch`` (a sharded benchmark run) its batches would otherwise be split
    over the processes (DDP) and it would differ from the one a single process trains.
    """
    from accelerate.state import AcceleratorState, DistributedType, GradientState, PartialState

    states = (PartialState, AcceleratorState, GradientState)
    if PartialState._shared_state.get("distributed_type", DistributedType.NO) == DistributedType.NO:
        yield
        return
    saved = [dict(state._shared_state) for state in states]
    AcceleratorState._shared_state.clear()
    GradientState._shared_state.clear()
    PartialState._shared_state.update(distributed_type=DistributedType.NO, backend=None, num_processes=1,
                                      process_index=0, local_process_index=0)
    try:
        yield
    finally:
        for state, values in zip(states, saved):
            state._shared_state.clear()
            state._shared_state.update(values)


def _copy(module):
    """A deep copy of a module (training moves and freezes it), or the object itself if it cannot be copied."""
    try:
        copied = copy.deepcopy(module)
        return copied.float() if isinstance(copied, torch.nn.Module) else copied
    except Exception:  # a callable that does not copy: it is only called, never changed
        return module
