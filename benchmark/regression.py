"""Regression guard: the tracked figures of a suite of runs against a committed baseline.

A baseline file holds the suite that made it (API calls as data, :mod:`benchmark.guard`), one
entry per run identity (method, profile, tiling) with its settings and figures, the time
ratios and the tolerances. Settings and call and tile counts are held exactly (so the
algorithm of each method is held without timing it), figures from deterministic computation
to a tight relative tolerance. Time is held only as two ratios of our code over references
timed beside it in the same process, interleaved (:mod:`benchmark.runs.reference_timing`:
stage I over diffusers' pipeline, tiled stage II over its denoiser calls): a faster, slower
or busy machine moves both sides alike, and a slowdown of our code fails. Ratios of two runs'
seconds, made minutes apart, moved with other load on the machine: older baselines' are shown
and no longer held.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from baselines.base_models import name_parts
from baselines.tiling import TilingConfig
from benchmark.oracle.study import tiling_tag
from benchmark.metrics.registry import tolerances as metric_tolerances
from benchmark.runs.reference_timing import STAGE1_VS_DIFFUSERS, TILING_OVERHEAD, read_reference_timing
from benchmark.runs.records import model_of

SETTINGS = ("size", "steps", "sr_steps", "seed", "samples", "samples_plan", "dataset.manifest_hash")
COUNTS = ("failed_samples", "denoiser_calls_per_sample", "tile_evaluations_per_sample", "stage1_unet_calls_per_image",
          "stage2_denoiser_calls_per_image", "stage2_tile_evaluations_per_image")
#: Settings and counts exactly; the oracle's figures from deterministic computation tightly; time only
#: as ratios. Scores are the metric registry's (each metric's ``tolerance``): model runs' scores come from
#: 8-bit images through random-weight networks on whatever CPU runs CI, so they get a little room.
FIXED_TOLERANCES = {
    **{name: {"exact": True} for name in SETTINGS + COUNTS},
    "seam_score": {"rel": 1e-3},
    "distribution_error": {"rel": 1e-3},
    "distribution_error_interior": {"rel": 1e-3},
    # Against references, timed in one process, interleaved, one thread, in CPU time, fastest of ten
    # after a warm-up: stage I's ratio is near 1 and moved by under 5 % with two busy loops beside it
    # (docs/regression.md), so 15 % catches a stage I 30 % slower; the engine's overhead is about
    # 1 % of its denoiser calls, so it is held in absolute terms (3 % more of a UNet call fails). Both
    # are held from above only: our code faster than the reference is no regression (CI's tests
    # beside the guard once moved stage I's ratio to 0.80).
    f"reference: {STAGE1_VS_DIFFUSERS}": {"rel": 0.15, "above_only": True},
    f"reference: {TILING_OVERHEAD}": {"abs": 0.03, "above_only": True},
}


def tolerances() -> dict:
    """Every tracked figure's tolerance: the fixed ones and each registered metric's (a plugin's too)."""
    return {**FIXED_TOLERANCES, **metric_tolerances()}


class BaselineError(ValueError):
    pass


def identity(results: dict) -> str:
    """What a run is, independent of where it was written: method, profile, base model, tiling (and StableSR's
    stage II). Runs on the default base model and on the x4 upscaler keep the names they had before."""
    parts = [results["method"], results["profile"]]
    parts += name_parts(model_of(results))
    if "tiling" in results:
        parts.append(tiling_tag(TilingConfig(**results["tiling"])))
    if results.get("backbone") == "StableSR":
        parts.append("stablesr")
    return "/".join(parts)


def _lookup(results: dict, dotted: str):
    """``results["scores"]["fid"]`` for ``"scores.fid"``; None where any part is missing."""
    value = results
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def tracked(results: dict) -> dict:
    """The figures of one run that the guard holds still."""
    figures = {name: _lookup(results, name) for name in tolerances() if not name.startswith("reference: ")}
    return {name: value for name, value in figures.items() if value is not None}


def _by_identity(results: list[dict], profile: str) -> dict[str, dict]:
    runs = {}
    for result in results:
        if result.get("profile") != profile:
            continue
        key = identity(result)
        if key in runs:
            raise BaselineError(f"two runs are both {key}; point --runs at one suite's runs")
        runs[key] = result
    return runs


def _reference_ratios(runs_folder: Optional[Path], profile: str) -> dict[str, float]:
    timing = read_reference_timing(runs_folder, profile) if runs_folder else None
    return {f"reference: {name}": value for name, value in (timing or {}).get("ratios", {}).items()}


def make_baseline(results: list[dict], profile: str, suite: list[str], runs_folder: Optional[Path] = None) -> dict:
    """The baseline of ``profile``'s runs (and of its reference timing under ``runs_folder``, if any)."""
    runs = _by_identity(results, profile)
    if not runs:
        raise BaselineError(f"no runs of profile {profile!r} to make a baseline from")
    env = next(iter(runs.values()))["environment"]
    return {"profile": profile, "suite": suite, "tolerances": tolerances(),
            "made_on": {"device": env["device"], "commit": env["git"]["commit"],
                        "date": env["date"]},
            "runs": {key: tracked(result) for key, result in sorted(runs.items())},
            "time_ratios": _reference_ratios(runs_folder, profile)}


@dataclass
class Check:
    run: str
    figure: str
    baseline: object
    current: object
    tolerance: str
    ok: bool


def _within(baseline, current, tolerance: dict) -> bool:
    if tolerance.get("exact"):
        return baseline == current
    if not isinstance(current, (int, float)) or not math.isfinite(current):
        return False
    allowed = tolerance.get("abs", 0.0) + tolerance.get("rel", 0.0) * abs(baseline)
    return (current - baseline if tolerance.get("above_only") else abs(current - baseline)) <= allowed


def _describe(tolerance: dict) -> str:
    if tolerance.get("exact"):
        return "exact"
    text = " + ".join(f"{kind} {tolerance[kind]:g}" for kind in ("abs", "rel") if kind in tolerance)
    return f"{text}, above only" if tolerance.get("above_only") else text


def compare(baseline: dict, results: list[dict], runs_folder: Optional[Path] = None) -> list[Check]:
    """Every tracked figure of the baseline against the runs (and the reference timing under
    ``runs_folder``); a missing run or figure fails."""
    profile, tolerances = baseline["profile"], baseline["tolerances"]
    runs = _by_identity(results, profile)
    checks = []
    for key, figures in baseline["runs"].items():
        current = tracked(runs[key]) if key in runs else {}
        for name, value in figures.items():
            tolerance = tolerances[name]
            now = current.get(name)
            checks.append(Check(key, name, value, now if key in runs else "missing run",
                                _describe(tolerance), now is not None and _within(value, now, tolerance)))
    ratios = _reference_ratios(runs_folder, profile)
    for name, value in baseline["time_ratios"].items():
        if not name.startswith("reference: "):  # a ratio of two runs' seconds: older baselines had them
            checks.append(Check("time", name, value, "not tracked", "–", True))
            continue
        now, tolerance = ratios.get(name), tolerances[name]
        checks.append(Check("time", name, value, now, _describe(tolerance),
                            now is not None and _within(value, now, tolerance)))
    for key in sorted(set(runs) - set(baseline["runs"])):
        checks.append(Check(key, "(run not in baseline)", None, "present", "–", True))
    return checks


def render(checks: list[Check], baseline_path: Path) -> str:
    def show(value) -> str:
        if isinstance(value, float):
            return f"{value:.6g}"
        if isinstance(value, list) and value and isinstance(value[0], dict):  # a sample plan
            digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
            return f"{len(value)} entries, sha256 {digest[:12]}"
        if isinstance(value, str) and len(value) > 24:
            return value[:12] + "…"
        return str(value)

    frame = pd.DataFrame([{"run": c.run, "figure": c.figure, "baseline": show(c.baseline),
                           "now": show(c.current), "tolerance": c.tolerance,
                           "status": "ok" if c.ok else "**FAIL**"} for c in checks])
    failed = sum(not c.ok for c in checks)
    verdict = (f"{failed} of {len(checks)} tracked figures moved beyond tolerance"
               if failed else f"all {len(checks)} tracked figures within tolerance")
    return f"Compared with `{baseline_path}`: {verdict}.\n\n{frame.to_markdown(index=False)}\n"
