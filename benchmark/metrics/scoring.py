"""Scores of a finished model run (docs/design.md, "Metrics"), computed outside the timed samples.

``run`` scores its images once they are all saved, and ``python -m benchmark score``
re-scores a finished run from its directory alone, so scores never slow the timing and a
metric fix needs no new images. The metrics are those of :mod:`benchmark.metrics.registry`
(the built-ins of :mod:`benchmark.metrics.builtin`, then any registered from outside), each
a function of the run's :class:`~benchmark.metrics.context.ScoringContext`. A metric that
cannot be computed is None, with the reason in ``skipped``: one for another task than the
run's (text-to-image or super-resolution), one that needs reference images where the run
has none, one without stage II tiles to score, one that raises
:class:`~benchmark.metrics.registry.NotApplicable`; a metric that fails otherwise is
recorded as ``failed: <error>`` and the others are scored all the same. Metric networks follow
:func:`metrics_profile`: real files on ``paper`` (missing ones are all
named at once), seeded random networks on ``tiny`` and ``paper-arch`` (random weights:
not image quality). Samples that ran out of memory or failed have no image: they are skipped,
and ``scores["oom_samples_skipped"]`` and ``scores["failed_samples_skipped"]`` say how many.

Under ``accelerate launch`` (:mod:`benchmark.runs.shard`) every process computes the
Inception features and CLIP scores (text-to-image runs) of its share of the images
(positions ≡ rank mod world), they are gathered in image order, and rank 0 alone evaluates
the registered metrics and writes ``results.json``: the same figures as one process computes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from baselines.profiles import get_profile, is_analytic
from benchmark import metrics
from benchmark.metrics.bootstrap import FILE as BOOTSTRAP_FILE, Bootstrap, interval, mean_of, replicates
from benchmark.metrics import presets as preset_registry, registry
from benchmark.metrics.context import ScoringContext
from benchmark.metrics.protocol import protocol_hash, protocol_record
from benchmark.metrics.registry import TEXT_TO_IMAGE, Metric, MetricValue, NotApplicable
from benchmark.metrics.weights import MissingWeightsError, require_weights
from benchmark.runs.records import read_json, write_json
from benchmark.runs.shard import Shard, current

BOOTSTRAP_KEY = "_bootstrap"  # the replicates, for bootstrap.json rather than results.json


class ScoringError(ValueError):
    """A directory that cannot be scored; the message says why."""


def metrics_profile(profile: str) -> str:
    """The metric networks' profile (``Profile.metrics``): ``paper``'s real weights, or ``tiny``'s random ones."""
    return get_profile(profile).metrics


def check_weights(profile: str):
    """Fail before any image is made when ``profile`` needs real metric weights that are missing."""
    profile = metrics_profile(profile)
    if not metrics.uses_random_weights(profile):
        require_weights(profile)


def score_run(out: Path, device: Optional[torch.device] = None,
              patch_protocol: str = metrics.patches.DEFAULT_PROTOCOL, shard: Optional[Shard] = None,
              bootstrap: Bootstrap = Bootstrap(), protocols: str = "", opted: str = "") -> dict:
    """Score the finished run in ``out`` and rewrite its results.json (atomically), the bootstrap's replicates
    in ``bootstrap.json``; returns the results.

    ``patch_protocol`` is how ``fid_patch`` / ``kid_patch`` cut crops: ``grid`` or ``random:K[:SEED]``.
    ``protocols`` names published presets (``all`` or a comma-separated list) to score the images under as
    well (``scores.protocols``); empty: none. ``opted`` names opt-in metrics to compute too (``all`` or names).
    """
    chosen = preset_registry.resolve(protocols) if protocols else []  # an unknown name fails before any work
    opted_in = registry.resolve_opt_in(opted) if opted else ()
    out = Path(out)
    if not (out / "results.json").is_file():
        raise ScoringError(f"{out} holds no finished run (no results.json); run it with `python -m benchmark run`")
    results = read_json(out / "results.json")
    if "per_image" not in results or is_analytic(results.get("profile")):
        raise ScoringError(f"{out} is not a model run; oracle runs carry their own figures")
    shard = shard or current(device)
    scored = score(out, results, device, metrics.PatchProtocol.parse(patch_protocol), shard, bootstrap, chosen,
                   opted_in)
    if shard.main:
        replicated = scored.pop(BOOTSTRAP_KEY, None)
        if replicated is not None:
            write_json(out / BOOTSTRAP_FILE, replicated)
        else:
            (out / BOOTSTRAP_FILE).unlink(missing_ok=True)
        results.update(scored)
        write_json(out / "results.json", results)
    return shard.share(results if shard.main else None)


def _empty_scores(registered: list[Metric]) -> dict:
    """Every metric None and every extra key at its empty value."""
    values = dict.fromkeys(metric.name for metric in registered)
    for metric in registered:
        values.update({key: _fresh(default) for key, default in metric.extras.items()})
    return values


def _unfinished(rows: list[dict], made: bool = True) -> str:
    """Why samples have no image: "all 4 samples ran out of memory", "2 failed, 1 ran out of memory" (``made``
    False: of every row, the ones with an image left out, "" where all have one)."""
    words = {"oom": "ran out of memory", "failed": "failed"}
    counts = Counter(row.get("status") for row in rows if made or row.get("status", "ok") != "ok")
    if made and len(counts) == 1:
        status, count = next(iter(counts.items()))
        return f"all {count} samples {words.get(status, status)}"
    return ", ".join(f"{count} {words.get(status, status)}" for status, count in sorted(counts.items()))


def _fresh(default):
    return type(default)(default) if isinstance(default, (dict, list)) else default


def score(out: Path, results: dict, device: Optional[torch.device] = None,
          patch_protocol: metrics.PatchProtocol = metrics.PatchProtocol(), shard: Shard = Shard(),
          bootstrap: Bootstrap = Bootstrap(), presets: tuple = (), opted: tuple = ()) -> dict:
    """The ``scores`` (with a ``bootstrap`` interval per score), ``metric_conventions`` and ``metrics_profile``
    of a run, and its per-image figures (on rank 0; the other processes of a sharded run compute their share
    of the features, then get {}). The bootstrap's replicates come under ``BOOTSTRAP_KEY``, for the file. The
    metrics are every registered one but the opt-in ones not in ``opted``."""
    profile = metrics_profile(results["profile"])
    check_weights(profile)
    registered = registry.chosen_metrics(opted)
    all_rows = results["per_image"]
    rows = [row for row in all_rows if row.get("status", "ok") == "ok"]  # unmade samples have no image
    skipped_counts = {"oom_samples_skipped": sum(row.get("status") == "oom" for row in all_rows),
                      "failed_samples_skipped": sum(row.get("status") == "failed" for row in all_rows)}
    values = _empty_scores(registered)
    origins = {metric.name: metric.origin for metric in registered}
    if not rows:
        reason = "no finished image: " + _unfinished(all_rows)
        return {**_protocol(protocol_record(results, rows, {}, patch_protocol, None, origins, profile)),
                "scores": {**values, "patch_protocol": patch_protocol.label,
                           "skipped": dict.fromkeys((m.name for m in registered), reason),
                           **skipped_counts, "images": 0, "intervals": {}, "bootstrap": None},
                "metric_conventions": {}, "metrics_profile": profile, "per_image": all_rows}
    context = ScoringContext(
        out=out, results=results, rows=rows, images=[out / row["image"] for row in rows],
        records=[read_json(out / "samples" / f"{row['index']:05d}.json") for row in rows], profile=profile,
        device=device, patch_protocol=patch_protocol, random_weights=metrics.uses_random_weights(profile),
        task=registry.run_task(results), unmade=_unfinished(all_rows, made=False), shard=shard)

    # The collective prelude: every process computes its share, gathered in image order.
    context.compute_generated()
    if context.task == TEXT_TO_IMAGE:
        context.compute_clip_values()
    if not shard.main:
        return {}

    skipped: dict[str, str] = {}
    conventions: dict[str, dict] = {}
    intervals: dict[str, dict] = {}
    replicated: dict[str, list] = {}
    draws = bootstrap.draws(len(rows)) if bootstrap.resamples and len(rows) >= 2 else None
    for metric in registered:
        reason = _not_applicable(metric, context)
        value = None
        if reason is None:
            try:
                value = _as_value(metric.compute(context))
            except NotApplicable as why:
                reason = str(why) or f"{metric.name} is not applicable to this run"
            except MissingWeightsError:
                raise
            except Exception as error:  # a plugin's failure must not break the run's other scores
                reason = f"failed: {type(error).__name__}: {error}"
        if reason is not None:
            skipped[metric.name] = reason
            skipped.update(dict.fromkeys(metric.skipped_extras, reason))
            continue
        values[metric.name] = None if value.value is None else float(value.value)
        values.update({key: item for key, item in value.extra.items() if key in metric.extras or key not in values})
        skipped.update(value.skipped)
        conventions[metric.name] = value.conventions
        if value.per_image is not None:
            if len(value.per_image) != len(rows):
                raise ValueError(f"metric {metric.name!r} gave {len(value.per_image)} per-image values for "
                                 f"{len(rows)} finished images")
            for row, item in zip(rows, value.per_image):
                row[metric.name] = item
        resample = value.resample or (mean_of(value.per_image) if value.per_image is not None else None)
        if draws is not None and resample is not None and value.value is not None:
            replicated[metric.name] = replicates(resample, draws)
            bounds = interval(replicated[metric.name], bootstrap.level)
            intervals[metric.name] = None if bounds is None else {"low": bounds[0], "high": bounds[1]}

    by_preset, preset_records, definitions = {}, {}, {}
    for preset in presets:  # the same images under each published protocol (benchmark.metrics.presets)
        try:
            by_preset[preset.name], preset_records[preset.name] = preset_registry.evaluate(
                context, preset, bootstrap, draws)
            definitions[preset.name] = preset_records[preset.name]["definition"]
        except NotApplicable as why:
            skipped[f"protocols.{preset.name}"] = str(why)
            definitions[preset.name] = preset.definition()
    if presets:
        values["protocols"] = by_preset
        conventions["protocols"] = preset_records

    record = bootstrap.as_record(len(rows))
    networks = {name: dict(getattr(context, name).conventions) for name in ("inception", "clip", "lpips")
                if name in vars(context)}  # the extractors this scoring loaded
    protocol = protocol_record(results, rows, networks, patch_protocol, record if draws is not None else None,
                               origins, profile, definitions)
    return {**_protocol(protocol), "scores": {**values, "patch_protocol": patch_protocol.label, "skipped": skipped,
                       **skipped_counts, "images": len(rows), "intervals": intervals,
                       "bootstrap": record if draws is not None else None},
            "metric_conventions": conventions, "metrics_profile": profile, "per_image": all_rows,
            BOOTSTRAP_KEY: None if draws is None else {
                **record, "items": [[row.get("item"), list(row["size"])] for row in rows],
                "values": {name: values[name] for name in replicated},
                "replicates": {name: [None if np.isnan(v) else float(v) for v in reps]
                               for name, reps in replicated.items()}}}


def _protocol(record: dict) -> dict:
    return {"protocol": record, "protocol_hash": protocol_hash(record)}


def _not_applicable(metric: Metric, context: ScoringContext) -> Optional[str]:
    """Why ``metric`` is not computed for this run before calling it; None: call it."""
    if context.task not in metric.applies_to:
        return metric.reason_for_task(context.task)
    if metric.needs_references and context.references_reason:
        return context.references_reason
    if metric.needs_stage2_tiles and not context.results.get("sr_tiling"):
        return f"{context.results.get('method', 'the run')} has no stage II tiles"
    return None


def _as_value(returned) -> MetricValue:
    """A metric function's return: a MetricValue, or a bare number (or None) with empty conventions."""
    if isinstance(returned, MetricValue):
        return returned
    if returned is None or isinstance(returned, (int, float)) or hasattr(returned, "__float__"):
        return MetricValue(None if returned is None else float(returned), {})
    raise TypeError(f"a metric returns a MetricValue or a number, not {type(returned).__name__}")
