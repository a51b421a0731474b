"""How a number was made, as the lines that head every report table.

Shared by the oracle study and the model tables, so that both say device, commit and date
the same way. Each helper takes every run a table shows and lists the distinct values, so
a table mixing commits or devices says so instead of naming only the first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from benchmark.runs.records import model_of

NOT_RUN = "not run"
NOT_SCORED = "not scored"


def distinct(values: Iterable, separator: str = ", ") -> str:
    return separator.join(sorted({str(v) for v in values}))


def commits(results: list[dict]) -> str:
    return distinct(r["environment"]["git"]["commit"][:12]
                    + ("+local changes" if r["environment"]["git"]["dirty"] else "")
                    for r in results)


def dates(results: list[dict]) -> str:
    return distinct(r["environment"]["date"][:10] for r in results)


def devices(results: list[dict]) -> str:
    return distinct(r["environment"]["device"] for r in results)


def memory_kinds(results: list[dict]) -> str:
    return distinct(r["memory_kind"] for r in results)


def has_random_weights(result: dict) -> bool:
    """Whether any stage ran on random weights (tiny, paper-arch): images without meaning."""
    return any("random" in str(stage.get("weights", "")) for stage in (result.get("weights") or {}).values())


def _weights(results: list[dict]) -> str:
    """Each stage's models and weights, and the ARAD LoRAs, over all runs of a table."""
    stages = {name: distinct((f"{stage.get('model', '?')} ({stage.get('weights', '?')})" for r in results
                              for stage_name, stage in (r.get("weights") or {}).items() if stage_name == name), " / ")
              for name in sorted({name for r in results for name in (r.get("weights") or {})})}
    parts = [f"{name} {models}" for name, models in stages.items()]
    loras = [r["lora"] for r in results if r.get("lora")]
    if loras:
        parts.append("ARAD LoRA " + distinct((
            f"rank {lora.get('rank')}, " + (f"{len(lora['trained_buckets'])} trained buckets"
                                           if lora.get("trained_buckets") else lora.get("note", "untrained"))
            for lora in loras), " / "))
    return "; ".join(parts)


def _steps(result: dict) -> str:
    """Stage I / stage II steps, '–' for a stage the method does not have."""
    return "/".join("–" if steps is None else str(steps) for steps in (result.get("steps"), result.get("sr_steps")))


def _convention(metric: str, convention: dict) -> str:
    parts = [f"{key} {convention[key]}" for key in ("library", "mode", "model", "pretrained")
             if convention.get(key) is not None]
    if convention.get("subsets") is not None:
        parts.append(f"{convention['subsets']} subsets of {convention['subset_size']}")
    crops = convention.get("crops")
    if isinstance(crops, dict):  # the patch metrics' crop record (a plugin's own "crops" may be anything)
        parts.append(f"{crops['protocol']} crops of {crops['crop_px']} px at native resolution ("
                     f"{convention['generated_crops']['crops']} generated, {convention['reference_crops']['crops']} "
                     "reference)")
    if convention.get("random_weights"):
        parts.append("random weights: not comparable to the paper")
    return f"{metric}: " + ", ".join(parts)


def _budget(budget: Optional[dict]) -> str:
    return "none" if budget is None else f"{budget['text']}, enforced by {budget['enforced_by']}"


def _dataset(result: dict) -> str:
    dataset = result.get("dataset")
    if not dataset:
        return "prompts without a data set (built-in set or --prompt; no reference images)"
    return (f"{dataset['name']} ({dataset['items']} items, manifest {dataset['manifest_hash'][:12]}, "
            f"folder <data sets>/{Path(dataset['folder']).name}: machine paths stay in run.json)")


def _backbones(results: list[dict]) -> str:
    """Each stage II backbone and the methods whose runs used it (a table may hold runs on both)."""
    users: dict[str, set] = {}
    for r in results:
        if r.get("backbone"):
            users.setdefault(r["backbone"], set()).add(r["method"])
    return "; ".join(f"{name} ({', '.join(sorted(methods))})" for name, methods in sorted(users.items())) or "none"


def model_provenance(results: list[dict]) -> str:
    """Markdown bullet lines: how the model runs of one table were made."""
    conventions = distinct((_convention(metric, convention) for r in results
                            for metric, convention in r.get("metric_conventions", {}).items()), "; ")
    unscored = sum("scores" not in r for r in results)
    budgets = distinct((_budget(r.get("memory_budget")) for r in results), "; ")
    lines = [
        f"- profile: {distinct(r['profile'] for r in results)}; base model (stage I): {_models(results)}",
        f"- device: {devices(results)}; memory: {memory_kinds(results)}; memory budget per sample: {budgets}",
        f"- weights: {_weights(results)}",
    ]
    if any(has_random_weights(r) for r in results):
        lines.append("- **random weights: not image quality** — the scores below measure the "
                     "machinery, not the methods")
    lines += [
        f"- backbone (stage II): {_backbones(results)}",
        f"- data set: {distinct(_dataset(r) for r in results)}",
        "- steps (stage I/stage II): " + distinct(f"{r['method']} {_steps(r)}" for r in results)
        + f"; seeds {distinct(r['seed'] for r in results)}",
        f"- metrics: {distinct(r['metrics_profile'] for r in results if 'metrics_profile' in r) or NOT_SCORED}"
        + (f"; {conventions}" if conventions else "")
        + (f"; {unscored} of {len(results)} runs not scored" if unscored else ""),
        f"- intervals: {distinct(_bootstrap(r) for r in results if 'scores' in r) or NOT_SCORED}",
        f"- evaluation protocol (`python -m benchmark protocol RUN_DIR`): "
        f"{distinct(r['protocol_hash'] for r in results if r.get('protocol_hash')) or 'not recorded'}",
        f"- commit: {commits(results)}; date: {dates(results)}",
    ]
    return "\n".join(lines)


def _bootstrap(result: dict) -> str:
    """How the run's intervals were drawn: ``[low, high]`` after a score."""
    record = result["scores"].get("bootstrap")
    if not record:
        return "none (scored without intervals)"
    return (f"[low, high] after a score: {record['level']:.0%} {record['method']}, {record['resamples']} resamples "
            f"of the {record['images']} images, seed {record['seed']}")


def _models(results: list[dict]) -> str:
    """The base models of the runs (records made before models were entries: SD 2.1's)."""
    return distinct(model_of(r) for r in results)


def ceiling_provenance(ceilings: list[dict]) -> str:
    """Markdown bullet lines: how the ceiling searches of a profile were made."""
    if not ceilings:
        return "- max res. (ours): not measured (no ceiling search on this profile)"
    return "\n".join([
        "- max res. (ours): the largest square side that completed in a ceiling search; largest side tried: "
        + distinct(f"{c['method']} {c['max_side']}" for c in ceilings),
        "- ceiling budget: " + distinct((_budget(c["budget"]) for c in ceilings), "; ")
        + f"; base model: {_models(ceilings)}",
        "- ceiling steps (stage I/stage II): " + distinct(f"{c['method']} {_steps(c)}" for c in ceilings)
        + f" ({distinct((c['note'] for c in ceilings), '; ')})",
        f"- ceiling device: {devices(ceilings)}; commit: {commits(ceilings)}; date: {dates(ceilings)}",
    ])
