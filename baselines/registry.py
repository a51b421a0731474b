"""The method registry: every method, built-in or a user's, is one :class:`Method` found by name.

A method says what it needs and how it loads; everything else (timing, memory, out of
memory as a result, ceilings, sharding, resume, scores, the regression guard, report rows)
is the suite's and reads the entry. ``load(method, context)`` loads the models once per run
and returns a *sampler*: ``sampler(prompt, size, seeds, source)`` makes one sample, the image
(1, 3, H, W) in [-1, 1] or 8-bit, of exactly ``size``, and its record; ``sampler.describe()``
says what made the images (it goes into ``run.json``). The record is a
:class:`baselines.sample_record.SampleRecord`: the runner reads its calls, sizes and crop. A
sampler of a method whose inputs are LR/HR pairs also has ``input_factor``: the LR image is
the HR one downscaled by it.

The built-in methods are registered by :mod:`baselines.methods` (their names are spelled
there only); a user's by :func:`register_method`, from a module given to ``--include`` or
an entry point of the group ``asd_bench.methods`` (see ``docs/extending.md``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Protocol

import torch

from baselines.base_models import DEFAULT_MODEL, base_models, get_base_model
from baselines.origins import BUILT_IN, RegistrationError, origin_of
from baselines.paper_weights import BASE

#: What a method takes: captions (text-to-image) or low-resolution images with their HR (super-resolution).
PROMPTS, LOW_RESOLUTION = "prompts", "low-resolution"
TASKS = {PROMPTS: "text-to-image", LOW_RESOLUTION: "super-resolution"}
#: The paper's tables a method may fill a row of (the report reads these); ``all-methods``: a method outside
#: the paper's tables that ``tables`` still runs on the data set, for the "All methods" table; ``model-tables``: one
#: that fills only the base models' tables (a method that does not run on SD 2.1); each of the others does too.
ROWS = ("table1", "table2", "table3", "stage2", "figure7", "all-methods", "model-tables")
#: Measurement plans a method may join: the tiny regression suite, its StableSR part, the GPU plan.
PLANS = ("tiny", "stablesr", "gpu")
#: ``Method.models`` of a method whose stage I runs on every registered base model, a user's too (``sr-plus``).
ANY_MODEL = "any"
#: Weight pieces the ``paper`` profile can look for (:mod:`baselines.paper_weights`): ``base`` is stage I's, the run's
#: base model, whichever it is.
PIECES = (BASE, "lora", "upscaler")
#: The stage I piece's name from before base models were entries: a plugin's ``needs=("sd21",)`` still means it.
PIECE_ALIASES = {"sd21": BASE}


class Sampler(Protocol):
    def __call__(self, prompt: str, size: tuple[int, int], seeds: Any,
                 source: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Any]:
        """One image of exactly ``size`` and its record: a :class:`baselines.sample_record.SampleRecord` (or a
        plain dict in its JSON layout)."""

    def describe(self) -> dict:
        """What produced the images (models, weights, settings); stored in ``run.json``."""


@dataclass(frozen=True)
class LoadContext:
    """What a method's ``load`` gets: the profile, the run's settings (``baselines.settings.Settings``),
    the device, where the user's weights are (``baselines.models.WeightPaths``) and stage I's base model
    (a name of :mod:`baselines.base_models`, one of the method's ``models``)."""

    profile: str
    settings: Any
    device: torch.device
    paths: Any
    model: str = DEFAULT_MODEL


@dataclass(frozen=True)
class Method:
    """One method. ``stage2`` is its stage II tiling strategy ("any": chosen per run; None: no
    stage II tiles, so no seam score), ``twin`` the method that differs only by tiles without
    overlap (seam pictures, time ratios), ``rows`` the paper tables it has a row in, ``plans``
    the measurement plans it joins, ``models`` the base models its stage I runs on (registered names of
    :mod:`baselines.base_models`, or :data:`ANY_MODEL` for every registered one)."""

    name: str
    summary: str
    load: Callable[["Method", LoadContext], Sampler]
    needs: tuple[str, ...] = ()
    inputs: str = PROMPTS
    stage2: Optional[str] = None
    twin: Optional[str] = None
    rows: tuple[str, ...] = ()
    plans: tuple[str, ...] = ("tiny",)
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    oracle: bool = False  # also runs on the weight-free oracle profile
    headline: bool = False  # the method the suite is about: reports compare it with every other one
    origin: Optional[str] = None  # who registered it: "built-in", else the module (filled in on registration)
    #: RunSpec fields of its step in the tiny regression suite, e.g. {"limit": 1} (None: two synthetic items)
    suite: Optional[dict] = field(default=None, hash=False)
    #: the base models its tiny-suite steps run on (None: every one of ``models`` whose entry has a suite)
    suite_models: Optional[tuple[str, ...]] = None

    def __post_init__(self):
        object.__setattr__(self, "needs", tuple(PIECE_ALIASES.get(piece, piece) for piece in self.needs))
        problems = [] if self.inputs in TASKS else [f"inputs {self.inputs!r} (one of {', '.join(TASKS)})"]
        problems += [f"row {row!r} (known: {', '.join(ROWS)})" for row in self.rows if row not in ROWS]
        problems += [f"plan {plan!r} (known: {', '.join(PLANS)})" for plan in self.plans if plan not in PLANS]
        problems += [f"weight piece {piece!r} (known: {', '.join(PIECES)})" for piece in self.needs
                     if piece not in PIECES]
        problems += [f"model {model!r} (known: {', '.join(base_models())})" for model in self.models
                     if model not in base_models() and model != ANY_MODEL]
        problems += [f"suite model {model!r} (not among its models)" for model in self.suite_models or ()
                     if model not in self.model_names]
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            problems.append("name (letters, digits, '-', '_', '.')")
        if not callable(self.load):
            problems.append("load (it must be callable)")
        if problems:
            raise RegistrationError(f"method {self.name!r} from {self.origin} has a bad " + "; a bad ".join(problems))

    @property
    def model_names(self) -> tuple[str, ...]:
        """The registered base models it runs on: those it names, or every one for :data:`ANY_MODEL`."""
        return tuple(base_models()) if ANY_MODEL in self.models else self.models

    def check_model(self, model: str):
        """Refuse a base model this method does not run on (or one no entry holds), naming the alternatives."""
        get_base_model(model)
        names = self.model_names
        if model not in names:
            raise ValueError(f"method {self.name} runs on the model{'s' * (len(names) > 1)} "
                             f"{', '.join(names)}, not {model!r}")

    @property
    def task(self) -> str:
        return TASKS[self.inputs]

    @property
    def built_in(self) -> bool:
        return self.origin == BUILT_IN


_METHODS: dict[str, Method] = {}


def _builtins_loaded():
    """The built-ins register themselves on import of :mod:`baselines.methods`."""
    import baselines.methods  # noqa: F401


def register_method(method: Method) -> Method:
    """Add ``method``; a name taken by another method is refused, naming both. An unset ``origin``
    becomes the module that registers it."""
    if method.origin is None:
        method = replace(method, origin=origin_of(sys._getframe(1).f_globals.get("__name__", "?")))
    _builtins_loaded()
    taken = _METHODS.get(method.name)
    if taken is not None and taken != method:
        raise RegistrationError(f"method {method.name!r} from {method.origin} clashes with the {taken.origin} method "
                         f"of that name; choose another name")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str):
    """Remove a user's method (tests, notebooks); built-ins stay."""
    if name in _METHODS and not _METHODS[name].built_in:
        del _METHODS[name]


def methods() -> dict[str, Method]:
    """Every registered method by name, built-ins first, in registration order."""
    _builtins_loaded()
    return dict(_METHODS)


def get_method(name: str) -> Method:
    known = methods()
    if name not in known:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(known)} (a method of your own: "
                         "--include MODULE_OR_FILE, see docs/extending.md)")
    return known[name]


def with_row(row: str) -> list[str]:
    """The names of the methods that fill a row of ``row``, in registration order."""
    return [name for name, method in methods().items() if row in method.rows]


def in_plan(plan: str) -> list[str]:
    return [name for name, method in methods().items() if plan in method.plans]


def oracle_method() -> Method:
    """The method the weight-free oracle profile runs (stage II alone)."""
    return next(method for method in methods().values() if method.oracle)


def headline() -> Optional[Method]:
    return next((method for method in methods().values() if method.headline), None)


def stage2_alone() -> Method:
    """The built-in super-resolution method that fills the stage II tables (Tables 4, 6, 7)."""
    return get_method(with_row("stage2")[0])
