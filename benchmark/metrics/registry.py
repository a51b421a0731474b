"""The registry of scored metrics: a metric is one registered function of the run's
:class:`~benchmark.metrics.context.ScoringContext`.

:func:`benchmark.metrics.scoring.score` evaluates every registered metric in registration
order (the built-ins of :mod:`benchmark.metrics.builtin` first) and writes its value to
``results["scores"][name]``, its conventions to ``results["metric_conventions"][name]``
and, where it cannot be computed, the reason to ``results["scores"]["skipped"][name]``.
A metric from outside the package is registered the same way::

    from benchmark.metrics.registry import MetricValue, NotApplicable, register_metric

    @register_metric(applies_to={"text-to-image"}, higher_is_better=True)
    def mean_brightness(context):
        ...
        return MetricValue(value, context.convention("my-lib", "mean of Y", None, None))

Registration is per process: a plugin module must be imported before ``score`` runs
(under ``accelerate launch``, by every process).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Union

from baselines.registry import RegistrationError, origin_of

if TYPE_CHECKING:
    from benchmark.metrics.context import ScoringContext

TEXT_TO_IMAGE, SUPER_RESOLUTION = "text-to-image", "super-resolution"
TASKS = (TEXT_TO_IMAGE, SUPER_RESOLUTION)
BUILT_IN = "built-in"
_BUILTIN_PACKAGE = "benchmark.metrics."  # the modules that register the built-in metrics
#: How a run's conditioning reads when its images follow the data set's LR input (runs
#: recorded before results carried ``task``).
_SR_CONDITIONING = "the data set's LR"


class NotApplicable(Exception):
    """Raised by a metric with the reason it cannot be computed for this run (goes to
    ``scores['skipped'][name]``)."""


@dataclass(frozen=True)
class MetricValue:
    """What a metric function returns."""

    value: Optional[float]
    conventions: dict = field(default_factory=dict)  # results['metric_conventions'][name]
    extra: dict = field(default_factory=dict)  # more keys of results['scores'], e.g. {'kid_std': ...}
    per_image: Optional[list] = None  # one value per finished image, stored in its per_image row under the name
    skipped: dict = field(default_factory=dict)  # reasons for extra keys left empty, e.g. {'fid_per_ratio': ...}
    # the statistic on a resample of the finished images (positions, with repeats): its bootstrap interval;
    # unset, a metric with per_image values is taken as their mean
    resample: Optional[Callable[[Any], float]] = None


@dataclass(frozen=True)
class Metric:
    """A registered metric: how to compute it, when it applies, how reports and regression read it."""

    name: str
    compute: Callable[["ScoringContext"], Union[MetricValue, float, None]]
    applies_to: frozenset
    needs_references: bool = False
    tolerance: Mapping = field(default_factory=lambda: {"rel": 0.02})  # regression tolerance of scores.<name>
    column: Optional[str] = None  # header of an extra report column (e.g. "KID↓"); None: no extra column
    digits: int = 2
    higher_is_better: Optional[bool] = None
    needs_stage2_tiles: bool = False  # only runs whose results have "sr_tiling" (seam score)
    origin: str = BUILT_IN  # or the module that registered it
    extras: Mapping = field(default_factory=dict)  # extra score keys and their value when not computed
    skipped_extras: tuple = ()  # extra keys that share the metric's skipped reason when it is skipped
    inapplicable_reason: Optional[str] = None  # skipped reason on runs of a task outside applies_to
    source: Optional[str] = None  # where its definition comes from (paper, code at a commit, or ours), for `list`
    opt_in: bool = False  # scored only when asked for (``score --metrics NAME``): costly, or on an optional package

    def reason_for_task(self, task: str) -> str:
        """Why the metric is skipped on a run of ``task`` (a task outside ``applies_to``)."""
        if self.inapplicable_reason:
            return self.inapplicable_reason
        return (f"{self.name} applies to {' and '.join(t for t in TASKS if t in self.applies_to)} runs; "
                f"this run is {task}")


_REGISTRY: dict[str, Metric] = {}


def _check_tasks(applies_to: Iterable[str]) -> frozenset:
    tasks = frozenset([applies_to] if isinstance(applies_to, str) else applies_to)
    unknown = sorted(tasks - set(TASKS))
    if not tasks or unknown:
        raise ValueError(f"applies_to must name {TEXT_TO_IMAGE!r} and/or {SUPER_RESOLUTION!r}, got "
                         f"{sorted(tasks)}")
    return tasks


def register_metric(name: Optional[str] = None, *, applies_to: Iterable[str] = TASKS, needs_references: bool = False,
                    tolerance: Optional[Mapping] = None, column: Optional[str] = None, digits: int = 2,
                    higher_is_better: Optional[bool] = None, needs_stage2_tiles: bool = False,
                    extras: Optional[Mapping[str, Any]] = None, skipped_extras: Iterable[str] = (),
                    inapplicable_reason: Optional[str] = None, source: Optional[str] = None, opt_in: bool = False):
    """Decorator: register ``function(context) -> MetricValue`` (or a float, or None) as a metric.

    ``name`` defaults to the function's name; a name already registered raises ValueError.
    ``tolerance`` defaults to ``{"rel": 0.02}``. ``extras`` are the extra keys of ``scores``
    the metric fills (via ``MetricValue.extra``) with their value when it is not computed;
    ``skipped_extras`` those of them that are skipped with the metric's reason. ``source``: where its
    definition comes from (a paper, code at a commit, or "ours" with the doc that defines it), which
    ``list`` shows. ``opt_in``: scored only on runs scored with ``--metrics`` naming it (a metric too costly, or on
    a package too large, for every run). Returns the function unchanged.
    """
    if callable(name):  # used bare: @register_metric
        return register_metric()(name)
    tasks = _check_tasks(applies_to)
    extras = dict(extras or {})
    if set(skipped_extras) - set(extras):
        raise ValueError(f"skipped_extras {sorted(set(skipped_extras) - set(extras))} are not among extras")

    def decorate(function):
        metric_name = name or function.__name__
        module = getattr(function, "__module__", None) or "?"
        metric = Metric(metric_name, function, tasks, bool(needs_references),
                        MappingProxyType(dict(tolerance if tolerance is not None else {"rel": 0.02})), column,
                        int(digits), higher_is_better, bool(needs_stage2_tiles),
                        BUILT_IN if module.startswith(_BUILTIN_PACKAGE) else origin_of(module), MappingProxyType(extras),
                        tuple(skipped_extras), inapplicable_reason, source, bool(opt_in))
        _add(metric)
        return function

    return decorate


def _add(metric: Metric):
    if metric.name in _REGISTRY:
        raise RegistrationError(f"metric {metric.name!r} from {metric.origin} clashes: {metric.name!r} is already "
                                f"registered ({_REGISTRY[metric.name].origin}); "
                         "choose another name")
    clash = [(m.name, key) for m in _REGISTRY.values() for key in m.extras
             if key == metric.name or key in metric.extras]
    clash += [(name, name) for name in metric.extras if name in _REGISTRY]
    if clash:
        owner, key = clash[0]
        raise RegistrationError(f"metric {metric.name!r} from {metric.origin}: score key {key!r} is already used (by {owner!r}); "
                         "choose another name")
    _REGISTRY[metric.name] = metric


def get_metric(name: str) -> Metric:
    """The registered metric ``name``; an unknown name raises ValueError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; registered: {', '.join(_REGISTRY)}") from None


def metrics() -> list[Metric]:
    """Every registered metric, in registration order (built-ins first)."""
    return list(_REGISTRY.values())


def chosen_metrics(opted: Iterable[str] = ()) -> list[Metric]:
    """The metrics a scoring computes: every one not opt-in, and the opt-in ones named in ``opted``."""
    opted = set(opted)
    return [metric for metric in _REGISTRY.values() if not metric.opt_in or metric.name in opted]


def resolve_opt_in(text: str) -> tuple[str, ...]:
    """The opt-in metrics ``text`` names (``all``, or names separated by commas); a name that is not an opt-in
    metric raises ValueError naming those that are."""
    opt_in = [metric.name for metric in _REGISTRY.values() if metric.opt_in]
    names = opt_in if text.strip() == "all" else [name.strip() for name in text.split(",") if name.strip()]
    wrong = [name for name in names if name not in opt_in]
    if wrong:
        raise ValueError(f"not an opt-in metric: {', '.join(wrong)} (every other metric is scored on every run); "
                         f"the opt-in metrics: {', '.join(opt_in) or 'none'}")
    return tuple(dict.fromkeys(names))


def metric_names() -> tuple[str, ...]:
    """The names of :func:`metrics`, in registration order (the keys of ``scores`` that hold metric values)."""
    return tuple(_REGISTRY)


def unregister_metric(name: str):
    """Remove a metric registered from outside the package (tests of plugins); built-ins stay."""
    metric = get_metric(name)
    if metric.origin == BUILT_IN:
        raise ValueError(f"metric {name!r} is built-in and cannot be unregistered")
    del _REGISTRY[name]


def tolerances() -> dict:
    """Regression tolerances of the registered metrics: ``{"scores.<name>": tolerance}``."""
    return {f"scores.{m.name}": dict(m.tolerance) for m in _REGISTRY.values()}


def report_columns() -> list[tuple[str, str, int]]:
    """(name, column header, digits) of the metrics with an extra report column, in registration order."""
    return [(m.name, m.column, m.digits) for m in _REGISTRY.values() if m.column]


def run_task(results: dict) -> str:
    """The task of a run: ``results["task"]`` where recorded, else read from its conditioning (older runs)."""
    task = results.get("task")
    if task:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r} in the run's results; known: {', '.join(TASKS)}")
        return task
    return SUPER_RESOLUTION if str(results.get("conditioning") or "").startswith(_SR_CONDITIONING) else TEXT_TO_IMAGE


from benchmark.metrics import builtin as _builtin  # noqa: E402,F401  (registers the built-ins, after the above)
from benchmark.metrics import detail as _detail  # noqa: E402,F401  (Diffusion-4K's GLCM score, compression ratio)
from benchmark.metrics import repetition as _repetition  # noqa: E402,F401  (the repetition score)
from benchmark.metrics import preference as _preference  # noqa: E402,F401  (HPSv2.1, PickScore)
from benchmark.metrics import image_reward as _image_reward  # noqa: E402,F401  (ImageReward)
from benchmark.metrics import iqa as _iqa  # noqa: E402,F401  (pyiqa's MUSIQ, MANIQA, CLIP-IQA: opt-in)
