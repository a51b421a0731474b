"""The settings of one ARAD LoRA run and the bucket sizes they name (Table 3 / Table 5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from datasets_build.sizes import Size, arad_buckets

#: The UNet attention projections the LoRA adapts.
DEFAULT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")


class TrainingError(ValueError):
    """Bad training input: settings, data, models or a checkpoint that does not fit."""


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one ARAD LoRA run (defaults: the paper's, docs/design.md, "Stage I")."""

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
