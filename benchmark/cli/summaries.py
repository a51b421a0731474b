"""The lines the verbs print: a run's figures, its scores, its out-of-memory and failed samples."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from baselines.profiles import is_analytic
from benchmark.metrics.registry import metric_names
from benchmark.runs.runner import PARTIAL_EXIT


def oom_summary(results: dict) -> list[str]:
    """"k of n samples out of memory (under B)" and "k failed" where any did."""
    lines = []
    if results["oom_samples"]:
        budget = results.get("memory_budget")
        lines.append(f"{results['oom_samples']} of {results['samples']} samples out of memory"
                     + (f" under {budget['text']}" if budget else "")
                     + f" (peak {results['oom_peak_memory_mib']:.0f} MiB when it failed)")
    if results.get("failed_samples"):
        errors = Counter(row["error"] for row in results.get("per_image", []) if row.get("status") == "failed")
        shown = "; ".join(f"{error}" + (f" ({count}x)" if count > 1 else "") for error, count in errors.most_common(2))
        lines.append(f"{results['failed_samples']} of {results['samples']} samples failed"
                     + (f": {shown}" if shown else "") + " (each sample's record has its traceback; "
                     "running the command again retries them)")
    return lines


def exit_status(results: dict) -> int:
    """0 when every sample is measured (finished or out of memory), PARTIAL_EXIT when some failed."""
    return PARTIAL_EXIT if results.get("failed_samples") else 0


def run_line(out: Path, results: dict) -> str:
    """One line of a finished run's figures."""
    done = results["finished_samples"] > 0
    if is_analytic(results["profile"]):
        figures = [f"{results['seconds_per_sample']:.3f} s/sample",
                   f"{results['denoiser_calls_per_sample']:.0f} denoiser calls/sample",
                   f"seam score {results['seam_score']:.3f}",
                   f"distribution error {results['distribution_error']:.4f}"] if done else []
        what = f"{results['method']} on oracle, tiling {results['tiling']['strategy']}"
    else:
        figures = [f"{results['seconds_per_image']:.2f} s/image",
                   f"stage I {results['stage1_unet_calls_per_image']:.0f} UNet calls/image",
                   f"stage II {results['stage2_denoiser_calls_per_image']:.0f} calls/image",
                   f"peak memory {results['peak_memory_mib']:.0f} MiB"] if done else []
        what = f"{results['method']} on {results['profile']}"
    return f"{what}: {', '.join(figures + oom_summary(results))} -> {out / 'results.json'}"


def scores_line(out: Path, results: dict) -> str:
    scores = results["scores"]
    shown = ", ".join(f"{name} {scores[name]:.4g}" for name in metric_names() if scores.get(name) is not None)
    return f"scores ({results['metrics_profile']}): {shown or 'none'} -> {out / 'results.json'}"
