"""A run, fully specified: :class:`RunSpec`, the one place where a run's defaults are resolved.

The command line parses into a ``RunSpec`` and calls :func:`benchmark.api.run`; a notebook,
the regression suites, ``tables`` and the GPU plan build one directly. ``resolved()`` fills
the defaults that depend on the method and profile and refuses what cannot run together,
before anything is loaded; ``run_dir()`` names the run's folder from what the run is, so
that the same run resumes in the same place.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Optional

import torch

from baselines.base_models import DEFAULT_MODEL, get_base_model, name_parts
from baselines.fast_path import CPU_DEFAULTS, FastPath, default_tile_batch_size
from baselines.paper_weights import WeightPaths
from baselines.profiles import Profile, ProfileError, default_profile, get_profile, model_profiles
from baselines.registry import LOW_RESOLUTION, get_method, oracle_method
from baselines.settings import BACKBONES, MIN_SIDE, Settings
from baselines.stablesr.backbone import DEFAULT_CFW_WEIGHT
from baselines.tiling import STAGE2_STRATEGIES, TilingConfig
from baselines.vae_tiling import VaeTiling
from benchmark.errors import UsageError
from benchmark.metrics.bootstrap import Bootstrap
from benchmark.metrics.patches import DEFAULT_PROTOCOL as DEFAULT_PATCH_PROTOCOL, PatchProtocol
from benchmark.oracle.study import default_out, run_tag, tiling_tag
from benchmark.runs.measure import MemoryBudget
from benchmark.runs.samples import DEFAULT_DATASET

DEFAULT_RUNS = Path("runs")
#: The fields that say where the paper profile's weights are (forwarded as options to a ceiling's trial runs).
WEIGHT_FIELDS = ("sd21", "model_weights", "vae", "upscaler", "lora", "stablesr_ckpt", "stablesr_vae")
TILING_FIELDS = ("tile", "overlap", "weighting", "offset", "offset_range", "reset_every", "fill", "tile_batch_size")


def parse_size(text: str, minimum: int = 8) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"size {text!r} is not of the form HxW, e.g. 2048x2048")
    height, width = int(match.group(1)), int(match.group(2))
    if height < minimum or width < minimum:
        raise UsageError(f"size {text!r} is too small: each side must be at least {minimum} px")
    return height, width


def profile_entry(name: str, models: bool = False) -> Profile:
    """The registered profile of that name (``models``: one with models), or a usage error naming the known ones."""
    try:
        return get_profile(name, models)
    except ProfileError as error:
        raise UsageError(str(error)) from None


@dataclass(frozen=True)
class RunSpec:
    """One run: which method on which profile and base model (stage I's), its samples, steps, tilings, fast path, budget, scoring
    and where it goes. Unset fields (None) take the method's and profile's defaults in :meth:`resolved`."""

    method: str
    profile: Optional[str] = None
    model: str = DEFAULT_MODEL
    dataset: str = DEFAULT_DATASET
    prompt: Optional[str] = None
    size: Optional[tuple[int, int]] = None
    limit: Optional[int] = None
    seed: int = 0
    steps: Optional[int] = None
    sr_steps: Optional[int] = None
    guidance: Optional[float] = None  # the base model's pipeline's default (BaseModel.guidance)
    colour_fix: str = "adain"
    tiling: Optional[str] = None  # stage II strategy of a method that leaves it to the run
    tile: Optional[int] = None
    overlap: Optional[int] = None
    weighting: str = "gaussian"
    offset: str = "random"
    offset_range: Optional[int] = None
    reset_every: int = 4
    fill: str = "eps"
    tile_batch_size: Optional[int] = None
    vae_tiling: str = "auto"
    dtype: Optional[str] = None
    attention: Optional[str] = None
    channels_last: Optional[bool] = None
    compile: Optional[bool] = None
    backbone: Optional[str] = None
    cfw_weight: float = DEFAULT_CFW_WEIGHT
    sd21: Optional[str] = None  # SD 2.1's folder
    model_weights: Optional[str] = None  # the run's base model's folder, whichever it is (over sd21 for SD 2.1)
    vae: Optional[str] = None  # a VAE folder replacing the run's base model's (SDXL's fp16-fix VAE)
    upscaler: Optional[str] = None
    lora: Optional[str] = None
    stablesr_ckpt: Optional[str] = None
    stablesr_vae: Optional[str] = None
    memory_budget: Optional[str] = None
    score: bool = True
    patch_protocol: str = DEFAULT_PATCH_PROTOCOL
    bootstrap: int = Bootstrap.resamples  # resamples of each score's interval (0: none)
    runs: Path = DEFAULT_RUNS
    out: Optional[Path] = None
    device: str = "cpu"
    progress: Optional[bool] = None
    include: tuple[str, ...] = field(default=())

    # ------------------------------------------------------------------ defaults and checks

    @property
    def entry(self) -> Profile:
        """The profile of a resolved spec."""
        return profile_entry(self.profile)

    def resolved(self) -> "RunSpec":
        """This spec with the method's and profile's defaults filled in; bad combinations refused."""
        method = get_method(self.method)
        try:
            method.check_model(self.model)
        except ValueError as error:
            raise UsageError(str(error)) from None
        entry = profile_entry(self.profile) if self.profile else default_profile(method.oracle)
        profile = entry.name
        if entry.analytic and not method.oracle:
            raise UsageError(f"the {profile} profile has no models and runs --method {oracle_method().name} only; "
                             f"run {method.name} on one of {', '.join(model_profiles())}")
        min_side = entry.min_side or MIN_SIDE
        if self.size is not None and min(self.size) < min_side:
            raise UsageError(f"size {self.size[0]}x{self.size[1]} is too small: each side must be at least "
                             f"{min_side} px")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {self.limit}")
        MemoryBudget.parse(self.memory_budget) if self.memory_budget else None
        PatchProtocol.parse(self.patch_protocol)
        Bootstrap(self.bootstrap)
        if self.backbone is not None and self.backbone not in BACKBONES:
            raise UsageError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if entry.analytic:  # no model: the run's defaults are the profile's, and nothing is scored
            if self.steps is not None and self.steps < 1:
                raise UsageError(f"--steps must be at least 1, got {self.steps}")
            if self.backbone is not None:
                raise UsageError(f"the {profile} profile has no SR model; --backbone needs a model profile "
                                 f"(--profile {', '.join(model_profiles())})")
            return replace(self, profile=profile, score=False,
                           **{k: v for k, v in entry.run_defaults.items() if getattr(self, k) is None},
                           tile_batch_size=(CPU_DEFAULTS["tile_batch_size"] if self.tile_batch_size is None
                                            else self.tile_batch_size))
        if self.tiling is not None and method.stage2 != "any":
            raise UsageError(f"--tiling chooses the stage II strategy of a method that leaves it to the run; "
                             f"{method.name} fixes its own ({method.stage2 or 'it has no stage II'})")
        if self.tiling is not None and self.tiling not in STAGE2_STRATEGIES:
            raise UsageError(f"--tiling {self.tiling!r} is not a stage II strategy; choose one of "
                             f"{', '.join(STAGE2_STRATEGIES)}")
        if method.inputs == LOW_RESOLUTION and self.prompt is not None:
            raise UsageError(f"{method.name} has no text input (its inputs are low-resolution images); drop --prompt")
        if self.backbone is not None and method.stage2 is None:
            raise UsageError(f"--backbone chooses stage II's model; {method.name} has no stage II")
        default_steps, default_sr_steps = entry.steps
        steps = default_steps if self.steps is None else self.steps
        sr_steps = default_sr_steps if self.sr_steps is None else self.sr_steps
        if method.inputs == LOW_RESOLUTION and self.sr_steps is None and self.steps is not None:
            sr_steps = self.steps  # stage II alone: --steps means its steps
        if steps < 1 or sr_steps < 1:
            raise UsageError(f"steps must be at least 1, got {steps} (stage I) and {sr_steps} (stage II)")
        guidance = get_base_model(self.model).guidance if self.guidance is None else self.guidance
        return replace(self, profile=profile, steps=steps, sr_steps=sr_steps, guidance=guidance)

    # ------------------------------------------------------------------ what the run is made of

    def budget(self) -> Optional[MemoryBudget]:
        return None if self.memory_budget is None else MemoryBudget.parse(self.memory_budget)

    def weight_paths(self) -> WeightPaths:
        """Where the paper profile looks: the folders given here, else the environment's
        (:meth:`baselines.paper_weights.WeightPaths.from_environment`)."""
        folders = {DEFAULT_MODEL: self.sd21, **({self.model: self.model_weights} if self.model_weights else {})}
        return WeightPaths.from_environment(models=folders, vaes={self.model: self.vae}, upscaler=self.upscaler,
                                            lora=self.lora, stablesr=self.stablesr_ckpt, stablesr_vae=self.stablesr_vae)

    def fast_path(self) -> FastPath:
        return FastPath(self.dtype, self.attention, self.channels_last, self.compile)

    def settings(self) -> Settings:
        """A model run's sampling settings (of a resolved spec)."""
        return Settings(self.steps, self.sr_steps, self.guidance, self.colour_fix, self.tiling or "implicit",
                        {name: getattr(self, name) for name in TILING_FIELDS}, VaeTiling(self.vae_tiling),
                        fast_path=self.fast_path(), backbone=self.backbone, cfw_weight=self.cfw_weight)

    def oracle_tiling(self) -> TilingConfig:
        return TilingConfig(self.tiling or "implicit", **{name: getattr(self, name) for name in TILING_FIELDS})

    # ------------------------------------------------------------------ where it goes

    def run_dir(self, dataset=None, description: Optional[dict] = None) -> Path:
        """``--out``, else ``RUNS/<profile>/<method>/<tag>``: the tag spells the base model (unless the default, so
        that runs made before models were entries keep their folders), data set build, sizes, prompt, steps,
        tilings, fast path and seed (a model run's from its sampler's ``description``)."""
        if self.out is not None:
            return Path(self.out)
        if self.entry.analytic:
            tag = run_tag(self.oracle_tiling(), self.size, self.steps, self.seed)
        else:
            tag = self._model_tag(dataset, description or {})
        budget = self.budget()
        return default_out(self.runs, self.profile, self.method, tag + ("" if budget is None else f"-mem{budget.text}"))

    def _model_tag(self, dataset, description: dict) -> str:
        parts = name_parts(self.model)
        parts += [] if dataset is None else [f"{dataset.name}-{dataset.manifest_hash[:8]}"]
        if self.size is not None:
            parts.append(f"{self.size[0]}x{self.size[1]}")
        if self.prompt is not None:
            parts.append("p" + hashlib.sha256(self.prompt.encode()).hexdigest()[:8])
        if description.get("steps") is not None:
            parts += [f"s{description['steps']}", f"g{description['guidance']:g}"]
        if description.get("sr_tiling"):
            parts += [f"sr{description['sr_steps']}", tiling_tag(TilingConfig(**description["sr_tiling"])),
                      description["colour_fix"]]
            if description.get("backbone") == BACKBONES["stablesr"]:  # x4 runs keep the names they had
                parts += ["stablesr"] + ([f"w{self.cfw_weight:g}"] if self.cfw_weight != DEFAULT_CFW_WEIGHT else [])
        if self.vae_tiling != "auto":
            parts.append(f"vae-{self.vae_tiling}")
        fast = description.get("fast_path") or {}
        words = {"dtype": fast.get("dtype"), "attention": f"attn-{fast.get('attention')}",
                 "channels_last": "cl" if fast.get("channels_last") else "no-cl",
                 "compile": "compiled" if fast.get("compile") else "eager"}
        parts += [words[key] for key in fast.get("given", ())]
        batch = self.tile_batch_size or default_tile_batch_size(torch.device(self.device))
        parts += [f"tb{batch}"] if batch != 1 else []  # default runs keep their names
        return "-".join(parts + [f"seed{self.seed}"])

    # ------------------------------------------------------------------ stored form

    def as_record(self) -> dict:
        """The fields that differ from the defaults, JSON-ready (baseline files store suites so)."""
        defaults = RunSpec(self.method)
        record = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "method" or value != getattr(defaults, item.name):
                record[item.name] = str(value) if isinstance(value, Path) else (
                    list(value) if isinstance(value, tuple) else value)
        return record

    @classmethod
    def from_record(cls, record: dict) -> "RunSpec":
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise UsageError(f"a run specification has unknown fields {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        values = dict(record)
        for name in ("size",):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        for name in ("runs", "out"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        values["include"] = tuple(values.get("include", ()))
        return cls(**values)
