"""Model runs of ``fstd`` (stage II alone) as the paper's Tables 4, 6 and 7, one block per backbone.

A run's row is found by its tiling in the paper's units: the tile, overlap and offset range
are converted from the run's backbone latent px to image px and then to the paper's latent
px (SD's factor 8), and compared with the oracle study's rows (``study_rows``), so the x4
upscaler's 128 / 64 latent px (factor 4) stand in the paper's 64 / 32 rows and a factor-8
backbone's figures stand as they are. Explicit overlap 0 is the non-overlap grid: where no
such run was made, Table 7's first row shows the no-overlap run and says so.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional

import pandas as pd

from baselines.registry import stage2_alone
from benchmark.oracle.study import StudyRow, study_rows
from benchmark.reporting import paper
from benchmark.reporting.model_tables import (Group, _finished_samples, _groups, _how, _measured, _notes,
                                              _paper, _score, _section, extra_cells, extra_scores, pick)
from benchmark.reporting.oracle_tables import comparable
from benchmark.reporting.sample_status import FAILED, OOM

TITLES = {"4": "Table 4 — tiling strategies", "6": "Table 6 — implicit overlap, offset range",
          "7": "Table 7 — explicit overlap"}
FIDELITY = ("psnr_y", "ssim_y", "lpips", "fid", "seam_score")
NO_OVERLAP_STANDS_IN = "the no-overlap run, the same grid"


def paper_units(result: dict) -> Optional[dict]:
    """The run's stage II tiling with its sizes in the paper's latent px; None where a size is
    not a whole number of them (or the backbone's latent factor is not recorded)."""
    factor = ((result.get("weights") or {}).get("stage2") or {}).get("latent_factor")
    if not factor or not result.get("sr_tiling"):
        return None
    tiling = comparable(result["sr_tiling"])
    for key in ("tile", "overlap", "offset_range"):
        if key in tiling:
            if tiling[key] * factor % paper.LATENT_FACTOR:
                return None
            tiling[key] = tiling[key] * factor // paper.LATENT_FACTOR
    return tiling


def _key(tiling: dict) -> str:
    return repr(sorted(tiling.items()))


def _row_key(row: StudyRow) -> str:
    return _key(comparable(row.tiling.as_record()))


def table4_runs(runs: list[dict], key: str) -> list[dict]:
    """The runs of Table 4's row ``key`` (a study row's key: "nonoverlap", "explicit", "implicit-random", ...)."""
    row = _row_key(next(r for r in study_rows() if r.table == "4" and r.key == key))
    return [r for r in runs if paper_units(r) is not None and _key(paper_units(r)) == row]


def _paper_figures(row: StudyRow) -> dict:
    figures = {"4": paper.TABLE4, "6": paper.TABLE6, "7": paper.TABLE7}[row.table].get(row.key) or {}
    seconds = figures.get("seconds")
    return {"paper PSNR↑": _paper(figures.get("psnr")), "paper LPIPS↓": _paper(figures.get("lpips")),
            "paper FID↓": _paper(figures.get("fid")), "paper s / image": "–" if seconds is None else f"{seconds}",
            "paper time ÷ no overlap": ("–" if seconds is None
                                        else f"{seconds / paper.TABLE4['nonoverlap']['seconds']:.2f}")}


def _ours(result: Optional[dict], reference: Optional[dict], extras) -> dict:
    cells = {"PSNR-Y↑": _score(result, "psnr_y"), "SSIM-Y↑": _score(result, "ssim_y", 3),
             "LPIPS↓": _score(result, "lpips", 3), "FID↓": _score(result, "fid"), **extra_cells(result, extras),
             "seam score": _score(result, "seam_score", 3), **_measured(result)}
    if result is None or not _finished_samples(result):
        calls = ratio = cells["s / image"]
    else:
        calls = f"{result['stage2_denoiser_calls_per_image']:.0f}"
        ratio = ("–" if reference is None or not _finished_samples(reference)
                 else f"{result['seconds_per_image'] / reference['seconds_per_image']:.2f}")
    return {**cells, "time ÷ no overlap": ratio, "denoiser calls / image": calls}


def _block(backbone: Optional[str], group: Group, runs: list[dict]) -> str:
    by_tiling = defaultdict(list)
    unmatched = []
    for result in runs:
        tiling = paper_units(result)
        (by_tiling[_key(tiling)] if tiling is not None else unmatched).append(result)
    known = {_row_key(row) for row in study_rows()}
    unmatched += [r for key, rs in by_tiling.items() if key not in known for r in rs]
    nonoverlap = next(row for row in study_rows() if row.key == "nonoverlap")
    reference_runs = by_tiling.get(_row_key(nonoverlap), [])
    reference = pick(reference_runs) if reference_runs else None
    extras = extra_scores(runs)
    shown, notes, tables = {}, [], []
    for table in ("4", "6", "7"):
        rows = []
        for row in (r for r in study_rows() if r.table == table):
            candidates, label = by_tiling.get(_row_key(row), []), row.label
            if not candidates and table == "7" and row.key == 0 and reference_runs:
                candidates, label = reference_runs, f"{row.label}: {NO_OVERLAP_STANDS_IN}"
            result = pick(candidates) if candidates else None
            if result is not None and id(result) not in shown:
                shown[id(result)] = result
                notes += _notes(row.label, candidates, result, FIDELITY)
            rows.append({"tiling": label, **_ours(result, reference, extras), **_paper_figures(row)})
        tables += [f"#### {TITLES[table]}", "", pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True), ""]
    if unmatched:
        notes.append(f"{len(unmatched)} {stage2_alone().name} run(s) with tilings outside the paper's rows are not shown: "
                     + ", ".join(sorted({repr(r['sr_tiling']) for r in unmatched})))
    caption = (f"Paper columns: {paper.SOURCE}; LPIPS legible only for the implicit rows, FID only for "
               f"the two implicit rows of Table 4. Our rows: `{stage2_alone().name}` (stage II alone) on the data set's LR "
               "images against its HR images; tiles, overlaps and offset ranges are in the paper's latent px "
               f"(factor {paper.LATENT_FACTOR}: 64 = 512 image px), converted from the backbone's. Seconds "
               "are this device's wall time: compare the time ratios with the paper's, not the seconds. "
               f"\"{OOM}\": every image ran out of memory; \"{FAILED}\": the method raised (the notes say what).")
    title = "stage II alone" + (f", backbone {backbone}" if backbone else "") + f": {group.title}"
    return _section(title, _how(list(shown.values())), caption, "\n".join(tables), notes)


def stage2_tables(results: list[dict]) -> str:
    """Tables 4, 6 and 7 from the ``fstd`` runs of one model profile, one block per backbone and
    group of comparable runs; the paper's data set gets a block even with every row not run."""
    by_backbone = defaultdict(list)
    for result in results:
        if result["method"] == stage2_alone().name:
            by_backbone[result.get("backbone")].append(result)
    blocks = []
    for backbone, runs in sorted(by_backbone.items(), key=lambda kv: str(kv[0])) or [(None, [])]:
        method = stage2_alone().name
        for group, by_method in _groups(runs, (method,), [paper.TABLE4_DATASET]).items():
            blocks.append(_block(backbone, group, by_method.get(method, [])))
    return "\n".join(blocks)
