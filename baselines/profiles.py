"""The profiles as registered entries: a :class:`Profile` found by name, as a method or a base model is.

A profile says where a run's weights come from (random weights built from configs at tiny widths or
at the published ones, the published weights from folders or a warm hub cache, or no model at all:
the oracle's analytic field), its default steps and sample count, and how its metric networks are
made. The suite reads these attributes and never branches on a profile's name, so a profile's
behaviour is written here once. The built-ins are ``oracle``, ``tiny``, ``paper-arch`` and ``paper``;
this module imports nothing of the project, so every layer can read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

#: The oracle's defaults: a 2048² field, 50 steps, 4 samples, the tiling study's tile.
ORACLE_DEFAULTS = {"size": (2048, 2048), "steps": 50, "limit": 4, "tile": 64, "overlap": 32, "offset_range": 32}


class ProfileError(ValueError):
    """A profile name no entry holds, or one that cannot do what was asked; the message names the known ones."""


@dataclass(frozen=True)
class Profile:
    """One profile. ``architecture``: the configs its random weights are built from (the key of a base model's
    ``networks``, ``vaes``, text encoders and stage II's configs; None where it builds none); ``published``: the
    published weights, found offline in folders or the hub cache; ``analytic``: no model, the oracle's Gaussian
    random field and its exact denoiser (its method only); ``steps``: a model run's default stage I (DDIM) and
    stage II (DDPM) steps (the paper's by default); ``sample_limit``: a run's default number of data-set items
    (None: all); ``metrics``: the profile whose metric networks score its runs (its own published files, or
    ``tiny``'s seeded random networks);
    ``trains_lora``: ARAD without a LoRA given trains and caches a small one (else an untrained adapter);
    ``min_side``: the smallest side it samples (None: the models', ``baselines.settings.MIN_SIDE``);
    ``run_defaults``: run fields it fills where a run leaves them unset; ``default``: the profile a run gets
    when it names none (the analytic one for the oracle's method, the other one for every other method);
    ``regression``: a regression suite runs on it (``baseline``, ``compare``): the analytic profile's tiling study,
    or the runs of the methods in the measurement plan of its name."""

    name: str
    description: str
    architecture: Optional[str] = None
    published: bool = False
    analytic: bool = False
    steps: tuple[int, int] = (50, 200)
    sample_limit: Optional[int] = None
    metrics: str = "tiny"
    trains_lora: bool = False
    min_side: Optional[int] = None
    run_defaults: Mapping[str, object] = field(default_factory=dict, hash=False)
    default: bool = False
    regression: bool = False

    @property
    def random_metric_networks(self) -> bool:
        """Whether its runs are scored by seeded random metric networks (no weight files needed)."""
        return not get_profile(self.metrics).published


_PROFILES: dict[str, Profile] = {}


def register_profile(profile: Profile) -> Profile:
    """Add ``profile``; a name another entry holds is refused."""
    taken = _PROFILES.get(profile.name)
    if taken is not None and taken != profile:
        raise ProfileError(f"profile {profile.name!r} is already registered; choose another name")
    _PROFILES[profile.name] = profile
    return profile


def profiles() -> dict[str, Profile]:
    """Every profile by name, in the order ``list`` and ``--help`` show them."""
    return dict(_PROFILES)


def model_profiles() -> dict[str, Profile]:
    """The profiles with models (every one but the oracle's analytic field)."""
    return {name: profile for name, profile in _PROFILES.items() if not profile.analytic}


def get_profile(name: str, models: bool = False) -> Profile:
    """The profile of that name (``models``: one with models), or an error naming the known ones."""
    known = model_profiles() if models else profiles()
    if name not in known:
        what = "model profiles" if models else "profiles"
        raise ProfileError(f"unknown profile {name!r}; known {what}: {', '.join(known)}")
    return known[name]


def random_architecture(name: str) -> str:
    """The configs profile ``name`` builds random weights from, or an error naming the profiles that build some."""
    profile = get_profile(name)
    if profile.architecture is None or profile.published:
        building = [entry.name for entry in _PROFILES.values() if entry.architecture and not entry.published]
        raise ProfileError(f"profile {name!r} builds no random weights from configs; those that do: "
                           f"{', '.join(building)}")
    return profile.architecture


def is_analytic(name: Optional[str]) -> bool:
    """Whether a record's profile is an analytic one (False for a name no entry holds: an old or foreign record)."""
    return name in _PROFILES and _PROFILES[name].analytic


def default_profile(analytic: bool) -> Profile:
    """The profile a run gets when it names none: the analytic one for the oracle's method, else the default."""
    return next(profile for profile in _PROFILES.values() if profile.default and profile.analytic == analytic)


register_profile(Profile(
    "oracle", "no weights: Gaussian random field data and its exact (truncated) denoiser; measures tiling alone "
              "(the oracle's method only)",
    analytic=True, min_side=8, run_defaults=ORACLE_DEFAULTS, default=True, regression=True))
register_profile(Profile(
    "tiny", "small configs of the base models (SD 2.1, SDXL, FLUX) and the x4 upscaler, fixed-seed random weights; "
            "seconds on a CPU (machinery, not image quality)",
    architecture="tiny", steps=(4, 8), sample_limit=3, trains_lora=True, default=True, regression=True))
register_profile(Profile(
    "paper-arch", "the published architectures (SD 2.1-base UNet 865.9 M, x4 upscaler UNet 473 M) with fixed-seed "
                  "random weights: costs, not images",
    architecture="paper-arch"))
register_profile(Profile(
    "paper", "the published weights from local folders or the Hugging Face cache (offline); ARAD needs a LoRA folder",
    architecture="paper-arch", published=True, metrics="paper"))
