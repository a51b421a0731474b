"""Published evaluation protocols as named presets, and the protocol-sensitivity scores they give.

The same method at the same size gets FID 65.86 in one paper's table and 85.02 in another's:
papers crop differently (DemoFusion's FID_c on 10 native-size crops per image, UltraPixel's
FID-patch on 3 crops at the extractor's input size, LSRNA's pFID / pKID), resize differently
(clean-fid's three modes) and fit the statistics with different libraries. Each preset here is
one such protocol, named after its source and citing it, with every choice its source leaves
open made a recorded parameter with a stated default (``ours``), so that

    python -m benchmark score RUN --protocols all

scores the same images under every protocol (``scores.protocols.<preset>.<metric>``, each value
with its bootstrap interval) and the report can show how much of a gap the protocol explains.

A preset is a crop rule (None: whole images) and a feature convention (the library and the
clean-fid mode of the resize) over the suite's one Inception network: features come from
:func:`~benchmark.metrics.inception.inception_outputs` / :func:`~benchmark.metrics.patches.patch_outputs`
and are cached per scoring by (crop protocol, mode), so presets that share them extract once;
the reference side goes through the on-disk statistics cache like every other score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Iterable, Mapping, Optional, Union

import numpy as np
import torch

from benchmark import metrics
from benchmark.metrics.bootstrap import crops_of, interval, replicates
from benchmark.metrics.fid import frechet_resampler
from benchmark.metrics.inception import MODES
from benchmark.metrics.inception_score import inception_score_from_logits
from benchmark.metrics.kid import kid_resampler
from benchmark.metrics.patches import CROP, PatchProtocol
from benchmark.metrics.registry import NotApplicable
from benchmark.metrics.repetition import native_side

if TYPE_CHECKING:
    from benchmark.metrics.bootstrap import Bootstrap
    from benchmark.metrics.context import ScoringContext

ALL = "all"
NATIVE = "native"  # crop side: the run's base model's native side (DemoFusion's "1x" crops)
LIBRARIES = ("clean-fid", "torchmetrics")
KINDS = {"fid": "FID", "kid": "KID", "is": "IS"}  # the statistics a preset can report


@dataclass(frozen=True)
class Crops:
    """Random crops: ``per_image`` per image at positions from ``default_rng([seed, image index])``, of side
    ``side`` px (an int, or :data:`NATIVE`), cut alike from generated and reference images."""

    per_image: int
    side: Union[int, str] = CROP
    seed: int = 0

    def protocol(self, native: int, smallest: int) -> PatchProtocol:
        """The crop protocol for a run whose base model is ``native`` px and whose smallest image side (generated
        or reference) is ``smallest`` px: a native crop is capped at ``smallest`` so that every image gives crops."""
        side = min(native, smallest) if self.side == NATIVE else int(self.side)
        return PatchProtocol("random", self.per_image, self.seed, side)


@dataclass(frozen=True)
class Preset:
    """A published protocol: what it reports (``names``: statistic -> the source's name for it), how crops are
    cut (None: whole images), the feature library and clean-fid mode, its citation, and which of its choices
    the source pins (``pinned``) and which are ours (``ours``), each ``choice -> "value: why"``."""

    name: str
    title: str
    source: str
    names: Mapping[str, str]
    crops: Optional[Crops]
    library: str = "clean-fid"
    mode: str = "clean"
    pinned: Mapping[str, str] = field(default_factory=dict)
    ours: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if set(self.names) - set(KINDS) or not self.names:
            raise ValueError(f"preset {self.name!r}: names must map some of {sorted(KINDS)} to published names")
        if self.library not in LIBRARIES or self.mode not in MODES:
            raise ValueError(f"preset {self.name!r}: library in {LIBRARIES}, mode in {MODES}")
        object.__setattr__(self, "names", MappingProxyType(dict(self.names)))
        object.__setattr__(self, "pinned", MappingProxyType(dict(self.pinned)))
        object.__setattr__(self, "ours", MappingProxyType(dict(self.ours)))

    def definition(self, protocol: Optional[PatchProtocol] = None) -> dict:
        """What decides this preset's numbers on a run (its crops resolved to ``protocol``): the protocol record's
        entry, so that ``protocol --check`` names a preset whose definition differs."""
        crops = None if self.crops is None else {
            "per_image": self.crops.per_image, "seed": self.crops.seed, "side_rule": str(self.crops.side),
            **({"crop_px": protocol.crop, "label": protocol.label} if protocol else {})}
        return {"title": self.title, "source": self.source, "statistics": dict(self.names), "crops": crops,
                "library": self.library, "mode": self.mode}


_PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    """Add ``preset`` to the registry (a name already registered raises ValueError)."""
    if preset.name in _PRESETS or preset.name == ALL:
        raise ValueError(f"preset {preset.name!r} is already registered")
    _PRESETS[preset.name] = preset
    return preset


def presets() -> list[Preset]:
    """Every registered preset, in registration order."""
    return list(_PRESETS.values())


def resolve(names: Union[str, Iterable[str]]) -> list[Preset]:
    """The presets named by ``names``: ``all``, a comma-separated list, or an iterable of names."""
    chosen = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if chosen == [ALL]:
        return presets()
    unknown = [name for name in chosen if name not in _PRESETS]
    if unknown or not chosen:
        raise ValueError(f"unknown protocol preset(s) {', '.join(unknown) or '(none given)'}; known: "
                         f"{ALL}, {', '.join(_PRESETS)}")
    return [_PRESETS[name] for name in dict.fromkeys(chosen)]


# -- evaluation ---------------------------------------------------------------------------------------------


class _GivenFeatures(torch.nn.Module):
    """torchmetrics' custom feature extractor that passes features through, so that its FID runs on the
    suite's Inception features (``num_features`` spares torchmetrics its probe with a dummy image)."""

    def __init__(self, dimensions: int):
        super().__init__()
        self.num_features = dimensions

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def torchmetrics_fid(generated: np.ndarray, reference: np.ndarray) -> float:
    """torchmetrics' ``FrechetInceptionDistance`` (running sums in float64, ``eigvals`` of the product) of two
    N x D feature sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_GivenFeatures(generated.shape[1]))
    fid.update(torch.from_numpy(np.asarray(reference, np.float64)), real=True)
    fid.update(torch.from_numpy(np.asarray(generated, np.float64)), real=False)
    return float(fid.compute())


def _outputs(context: "ScoringContext", preset: Preset, items) -> tuple:
    """(generated outputs, reference statistics, image positions -> feature rows, crop protocol or None)."""
    name, mode = context.require_references()[0], preset.mode
    if preset.crops is None:
        generated = context.generated if mode == "clean" else context.cached(
            f"outputs:{mode}", lambda: metrics.inception_outputs(context.images, context.inception, mode=mode))
        return generated, context.stats(name, items, mode=mode), (lambda positions: positions), None
    sizes = [tuple(row["size"]) for row in context.rows]
    references = [(item.height, item.width) for item in items]
    protocol = preset.crops.protocol(native_side(context.results), min(min(s) for s in sizes + references))
    generated_crops, reference_crops = metrics.crop_summary(sizes, protocol), metrics.crop_summary(references, protocol)
    if generated_crops["crops"] < 2 or reference_crops["crops"] < 2:
        raise NotApplicable(f"{protocol.label} gives {generated_crops['crops']} generated and "
                            f"{reference_crops['crops']} reference crops (2 each needed)")
    generated = context.cached(f"crops:{protocol.label}:{mode}", lambda: metrics.patch_outputs(
        context.images, context.inception, protocol, mode=mode))
    stats = context.stats(f"{name}-patches", items, protocol, mode)
    counts = [len(protocol.boxes(*size, position)) for position, size in enumerate(sizes)]
    return generated, stats, crops_of(counts), protocol


def _statistic(kind: str, preset: Preset, generated, stats, select) -> tuple[float, object, dict]:
    """(value, resampler over image positions, what it records) of one statistic of a preset."""
    features = generated.features
    if kind == "fid":
        frechet = frechet_resampler(features, stats.mu, stats.sigma)
        value = torchmetrics_fid(features, stats.features) if preset.library == "torchmetrics" \
            else metrics.fid_score(generated, stats)["value"]
        return value, lambda positions: frechet(select(positions)), {"n": len(features), "n_reference": stats.count}
    if kind == "kid":
        result = metrics.kid_score(generated, stats)
        kid = kid_resampler(features, stats.features)
        return result["value"], lambda positions: kid(select(positions)), {
            "n": len(features), "n_reference": stats.count, "subset_size": result["conventions"]["subset_size"]}
    value, _, splits = inception_score_from_logits(generated.logits)
    return value, lambda positions: inception_score_from_logits(generated.logits[select(positions)], splits)[0], \
        {"n": len(generated.logits), "splits": splits}


def evaluate(context: "ScoringContext", preset: Preset, bootstrap: "Bootstrap",
             draws: Optional[np.ndarray]) -> tuple[dict, dict]:
    """``(scores, record)`` of one preset on a run: ``{statistic: {"value", "low", "high"}}`` (the interval from
    ``draws``, None without) and what it recorded (its definition resolved on this run, counts, conventions).
    Raises NotApplicable where the run has no references or too few crops."""
    _, items = context.require_references()
    generated, stats, select, protocol = _outputs(context, preset, items)
    scores, recorded = {}, {}
    for kind in preset.names:
        value, resample, extra = _statistic(kind, preset, generated, stats, select)
        bounds = interval(replicates(resample, draws), bootstrap.level) if draws is not None else None
        scores[kind] = {"value": float(value), "low": bounds[0] if bounds else None,
                        "high": bounds[1] if bounds else None}
        recorded[kind] = extra
    interval_note = ("the suite's resampler of the same statistic (frechet_resampler) around torchmetrics' value"
                     if preset.library == "torchmetrics" else "the statistic itself on each resample")
    return scores, {"definition": preset.definition(protocol), "statistics_recorded": recorded,
                    "feature_conventions": generated.conventions, "pinned": dict(preset.pinned),
                    "ours": dict(preset.ours), "interval": interval_note}


from benchmark.metrics import preset_catalogue as _catalogue  # noqa: E402,F401  (registers the published presets)
