"""Command line: ``python -m baselines.train_arad --data DATA --output DIR [options]``.

Trains the ARAD multi-aspect LoRA (docs/design.md, "Stage I"; Algorithm 1) and writes a LoRA folder that
``ar-plus``, ``ar-tile`` and ``asd`` load (see :mod:`baselines.lora`). The work is done
by :func:`baselines.arad.train_arad`; this module only parses options, loads
the base model of a profile and the data, and reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .arad import (
    TrainConfig,
    TrainingError,
    as_train_models,
    bucket_sizes,
    load_training_data,
    make_accelerator,
    manifest_sizes,
    smallest_divisor,
    train_arad,
)
from .lora import LoraError

_EPILOG = """\
examples:
  # the paper's run (9 buckets, rank 4, batch 8, Adam 1e-4, 10,000 steps) on an arad-train build
  python -m datasets_build arad-train --source laion-aesthetics-img2dataset/ --out data/arad-train
  python -m baselines.train_arad --data data/arad-train --output runs/arad-lora-9

  # Table 3: 3 or 5 buckets (build the data with the same --buckets)
  python -m baselines.train_arad --data data/arad-train-3 --buckets 3 --output runs/arad-lora-3

  # several GPUs, bf16, resumable
  accelerate launch -m baselines.train_arad --data data/arad-train --output runs/arad-lora-9 \\
      --mixed-precision bf16 --checkpoint-every 500 --resume

  # offline smoke run: tiny random-weight profile on generated images, buckets / 16
  python -m baselines.train_arad --profile tiny --data generated:32 --bucket-divisor auto \\
      --steps 20 --batch-size 4 --output runs/arad-tiny

The output folder holds pytorch_lora_weights.safetensors (diffusers/peft layout:
pipe.load_lora_weights(DIR) reads it), arad_lora.json (base model fingerprint, rank,
buckets, settings, data hash), losses.json and checkpoints/. Rerunning with --resume
continues from the newest checkpoint; a resumed run gives the same LoRA as an
uninterrupted one. Exit status: 0 when trained, 2 for bad options, data or checkpoints.
"""


def parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m baselines.train_arad",
        description=(
            "Train the ARAD multi-aspect LoRA of Any-Size-Diffusion (stage I): images bucketed by\n"
            "aspect ratio (Eq. 1 over the Table 5 sizes), scaled to cover their bucket and centre-\n"
            "cropped, one bucket per batch, LoRA on the UNet attention projections, eps-prediction\n"
            "MSE with the SD noise schedule, on accelerate (works under `accelerate launch`)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("data and model")
    g.add_argument("--data", required=True, metavar="DATA",
                   help="a finished datasets_build build folder (arad-train), a data set name built under "
                        "--data-dir, or generated:N[:SEED] for N procedural images (offline)")
    g.add_argument("--data-dir", type=Path, default=Path("data"), metavar="DIR",
                   help="where data set names are looked up (default: data)")
    g.add_argument("--output", required=True, type=Path, metavar="DIR",
                   help="the LoRA folder to write (checkpoints go to DIR/checkpoints)")
    g.add_argument("--profile", default="paper", metavar="NAME",
                   help="base model profile of baselines.profiles: tiny (small random-weight configs), paper-arch "
                        "(SD 2.1-base architecture, random weights), paper (SD 2.1-base weights; default)")
    g.add_argument("--sd21", metavar="DIR",
                   help="paper profile: the SD 2.1-base diffusers folder (default $ASD_SD21, else the Hugging Face "
                        "cache, offline)")
    g = p.add_argument_group("ARAD settings (defaults: the paper's, docs/design.md, 'Stage I')")
    g.add_argument("--buckets", type=int, choices=(3, 5, 9), default=d.buckets,
                   help="train on the first 3, 5 or 9 sizes of Table 5 (Table 3; default 9)")
    g.add_argument("--bucket-divisor", default=str(d.bucket_divisor), metavar="N|auto",
                   help="divide every bucket side by N, a divisor of 64 (small models and smoke runs; default 1); "
                        "auto: the largest the profile's VAE and UNet allow")
    g.add_argument("--rank", type=int, default=d.rank, help=f"LoRA rank, alpha = rank (default {d.rank})")
    g.add_argument("--learning-rate", "--lr", type=float, default=d.learning_rate,
                   help=f"Adam learning rate, constant (default {d.learning_rate:g})")
    g.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"images per batch and process, all from one bucket (default {d.batch_size})")
    g.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps:,})")
    g.add_argument("--gradient-accumulation", type=int, default=d.gradient_accumulation, metavar="N",
                   help="micro-batches per optimizer step (default 1)")
    g.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=d.mixed_precision,
                   help="accelerate mixed precision; the LoRA weights stay fp32 (default no)")
    g.add_argument("--max-grad-norm", type=float, default=None, metavar="X",
                   help="clip the gradient norm to X (default: no clipping; the paper does not say)")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of LoRA init, batch order and noise (default 0)")
    g = p.add_argument_group("run")
    g.add_argument("--checkpoint-every", type=int, default=500, metavar="N",
                   help="write a resumable checkpoint every N steps, and at the end (0: never; default 500)")
    g.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints, metavar="K",
                   help="keep the newest K checkpoints (0: all; default 2)")
    g.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in OUTPUT/checkpoints (same settings and data)")
    g.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes (default 0)")
    g.add_argument("--stop-at", type=int, default=None, metavar="N",
                   help="stop after step N without writing the LoRA, as if interrupted (for testing --resume)")
    return p


def load_models(profile: str, device=None, sd21: str | None = None) -> Any:
    """Stage I's models of ``profile`` (:func:`baselines.models.load_text_to_image`), in fp32.

    Training casts the frozen parts to the ``--mixed-precision`` dtype itself; the
    ``paper`` profile reads SD 2.1-base from ``sd21`` / ``$ASD_SD21`` or the Hugging Face
    cache, offline.
    """
    import torch

    from . import models
    from .profiles import ProfileError, get_profile

    try:
        get_profile(profile, models=True)
    except ProfileError as exc:
        raise TrainingError(str(exc)) from exc
    paths = models.WeightPaths.from_environment(models={models.SD21.name: sd21})
    try:
        return models.load_text_to_image(profile, torch.device(device or "cpu"), torch.float32, paths)
    except models.MissingWeightsError as exc:
        raise TrainingError(str(exc)) from exc


def config_from(args: argparse.Namespace, models: Any) -> TrainConfig:
    if args.bucket_divisor == "auto":
        divisor = smallest_divisor(models)
    else:
        try:
            divisor = int(args.bucket_divisor)
        except ValueError as exc:
            raise TrainingError(f"--bucket-divisor must be a number or auto, not {args.bucket_divisor!r}") from exc
    config = TrainConfig(
        buckets=args.buckets,
        bucket_divisor=divisor,
        rank=args.rank,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        steps=args.steps,
        gradient_accumulation=args.gradient_accumulation,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
        max_grad_norm=args.max_grad_norm,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        workers=args.workers,
    )
    config.validate()
    return config


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        accelerator = make_accelerator(args.mixed_precision, max(1, args.gradient_accumulation))
        main_process = accelerator.is_main_process

        def say(msg: str) -> None:
            if main_process:
                print(msg, file=sys.stderr, flush=True)

        generated = args.data.startswith("generated")
        # a data folder is checked before the (possibly large) model is loaded
        data = None if generated else load_training_data(args.data, args.data_dir)
        loaded = load_models(args.profile, accelerator.device, args.sd21)
        models = as_train_models(loaded)
        if models.name is None:
            models.name = args.profile
        config = config_from(args, models)
        sizes = bucket_sizes(config.buckets, config.bucket_divisor)
        if generated:  # drawn with the long side of the largest bucket
            data = load_training_data(args.data, long_side=max(max(s.height, s.width) for s in sizes))
        else:
            built_for = manifest_sizes(data.source)
            wanted = [s.name for s in bucket_sizes(config.buckets)]
            if built_for is not None and built_for != wanted:
                say(f"warning: {args.data} was built for sizes {' '.join(built_for)}; training rebuckets to "
                    f"{' '.join(wanted)} (Eq. 1), cropping images that were already cropped. Build arad-train "
                    f"with --buckets {config.buckets} for the paper's Table 3 setting.")
        say(f"ARAD LoRA: profile {args.profile}, {len(data)} images from {data.source}, buckets "
            f"{' '.join(s.name for s in sizes)}, rank {config.rank}, batch {config.batch_size} x "
            f"{config.gradient_accumulation} x {accelerator.num_processes}, {config.steps} steps")
        result = train_arad(models, data, args.output, config, resume=args.resume, accelerator=accelerator,
                            stop_at=args.stop_at, log=say if main_process else None,
                            extra_metadata={"profile": args.profile,
                                            "base_weights": getattr(loaded, "weights", None)})
    except (TrainingError, LoraError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.finished and main_process:
        print(result.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
