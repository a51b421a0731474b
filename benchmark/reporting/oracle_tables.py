"""The oracle tiling study as the paper's Tables 4, 6 and 7 (FSTD on the weight-free oracle).

Our seam and distribution figures stand beside the paper's PSNR and seconds; rows of the
study that were not run are shown as not run.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from baselines.profiles import is_analytic
from baselines.registry import oracle_method
from benchmark.reporting import paper
from benchmark.reporting.plots import time_per_tiling
from benchmark.reporting.provenance import NOT_RUN, commits, dates, devices, memory_kinds
from benchmark.oracle.study import StudyRow, study_rows


def comparable(tiling_record: dict) -> dict:
    """Tiling parameters that change outputs (batching tiles changes only the call count)."""
    return {k: v for k, v in tiling_record.items() if k != "tile_batch_size"}


def settings_of(result: dict) -> tuple:
    """The settings that make oracle runs one study: size, steps, seed, samples."""
    return (tuple(result["size"]), result["steps"], result["seed"], result["samples"])


def _provenance(results: list[dict]) -> str:
    first = results[0]
    return "\n".join([
        f"- profile: `{first['profile']}` — data: {first['data']['kind']} "
        f"(ℓ = {first['data']['correlation_length']} px, {first['data']['channels']} channels); "
        f"denoiser: {first['denoiser']['kind']}, radius {first['denoiser']['radius']}, "
        f"{first['denoiser']['padding']} padding",
        f"- weights: {first['weights']}; backbone: {first['backbone']}",
        f"- image {first['size'][0]}×{first['size'][1]} px = latent "
        f"{first['latent_size'][0]}×{first['latent_size'][1]}; {first['steps']} steps of "
        f"{first['sampler']}; {first['samples']} samples per row, seed {first['seed']}",
        f"- device: {devices(results)}; memory: {memory_kinds(results)}",
        f"- commit: {commits(results)}; date: {dates(results)}",
        "- seam score: squared jumps across the non-overlap tile borders over squared jumps "
        "elsewhere (1.0 = no seam); distribution error: Fréchet distance between Gaussian "
        "fits of 6×6 patches and the true field, over the whole latent and without a "
        f"{first['distribution_error_interior_margin']} px margin (no image edges, no "
        "uncovered FSTD strip)",
    ])


def _row_figures(result: dict | None, reference_seconds: float | None) -> dict:
    if result is None:
        return {"seam score": NOT_RUN, "distribution error": NOT_RUN,
                "distribution error, interior": NOT_RUN, "denoiser calls / sample": NOT_RUN,
                "s / sample": NOT_RUN, "time ÷ no overlap": NOT_RUN}
    return {
        "seam score": f"{result['seam_score']:.3f} ± {result['seam_score_std']:.3f}",
        "distribution error": f"{result['distribution_error']:.4f}",
        "distribution error, interior": ("–" if result["distribution_error_interior"] is None
                                         else f"{result['distribution_error_interior']:.4f}"),
        "denoiser calls / sample": f"{result['denoiser_calls_per_sample']:.0f}",
        "s / sample": f"{result['seconds_per_sample']:.3f}",
        "time ÷ no overlap": (f"{result['seconds_per_sample'] / reference_seconds:.2f}"
                              if reference_seconds else "–"),
    }


def _paper_figures(row: StudyRow) -> dict:
    if row.table == "4":
        figures = paper.TABLE4.get(row.key)
    else:
        figures = (paper.TABLE6 if row.table == "6" else paper.TABLE7).get(row.key)
    if figures is None:
        return {"paper PSNR": "–", "paper s / image": "–"}
    return {"paper PSNR": f"{figures['psnr']:.2f}", "paper s / image": f"{figures['seconds']}"}


def oracle_tables(results: list[dict], figures: Path) -> str:
    """The oracle study as Tables 4, 6 and 7, one block per set of run settings, each with
    a plot of time per tiling written under ``figures``."""
    oracle = [r for r in results if is_analytic(r.get("profile")) and r.get("method") == oracle_method().name]
    if not oracle:
        return ""
    groups = defaultdict(list)
    for result in oracle:
        groups[settings_of(result)].append(result)
    titles = {"4": "Table 4 — tiling strategies", "6": "Table 6 — implicit overlap, offset range",
              "7": "Table 7 — explicit overlap"}
    blocks = []
    for settings, group in sorted(groups.items(), key=lambda kv: max(r["environment"]["date"]
                                                                     for r in kv[1]),
                                  reverse=True):
        by_tiling = {}
        for result in group:  # the newest run wins where a configuration was run twice
            key = repr(sorted(comparable(result["tiling"]).items()))
            if key not in by_tiling or result["environment"]["date"] >= by_tiling[key]["environment"]["date"]:
                by_tiling[key] = result

        def find(row: StudyRow):
            return by_tiling.get(repr(sorted(comparable(row.tiling.as_record()).items())))

        reference = find(study_rows()[1])
        reference_seconds = reference["seconds_per_sample"] if reference else None
        lines = [f"## Oracle study: {settings[0][0]}×{settings[0][1]} px, {settings[1]} steps, "
                 f"{settings[3]} samples, seed {settings[2]}", "", "How these numbers were made:",
                 _provenance(group), "",
                 f"Paper columns: {paper.SOURCE}. They measure image quality (PSNR) on real "
                 "faces, ours measure seams and distribution on the oracle; compare trends, "
                 "not values. Seconds are this device's wall time and compare only within a "
                 "table.", ""]
        for table in ("4", "6", "7"):
            rows = [row for row in study_rows() if row.table == table]
            frame = pd.DataFrame([{"tiling": row.label, **_row_figures(find(row), reference_seconds),
                                   **_paper_figures(row)} for row in rows])
            lines += [f"### {titles[table]}", "", frame.to_markdown(index=False), ""]
        timed, plotted = [], set()
        for row in study_rows():
            if find(row) is not None and row.tiling not in plotted:
                plotted.add(row.tiling)
                timed.append((row.label, find(row)["seconds_per_sample"],
                              find(row)["seconds_per_sample_std"]))
        name = f"oracle-time-{settings[0][0]}x{settings[0][1]}-s{settings[1]}-n{settings[3]}.png"
        plot = time_per_tiling(timed, f"FSTD tiling on the oracle, {settings[0][0]}×{settings[0][1]} "
                                      f"px, {settings[1]} steps: seconds per sample",
                               figures / name)
        lines += [f"![time per tiling]({plot.relative_to(figures.parent).as_posix()})", ""]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)
