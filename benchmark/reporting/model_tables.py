"""Model runs as the paper's Tables 1, 2, 3 and Figure 7: one markdown report per profile.

Runs are compared only with runs of the same data set (name and manifest hash) at the same
sizes, so each table is one such group. Where several runs fit one cell (other seeds, steps
or limits), the run with the most images is shown, the newest among equals, and a note
under the table says how many were left out. The paper's data sets always get a table,
even with every row not run, so that the paper's figures are always in the report.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from baselines.lora import EXTERNAL as EXTERNAL_LORA
from baselines.registry import methods, with_row
from datasets_build.sizes import ARAD_BUCKETS
from benchmark.reporting import paper
from benchmark.reporting.ceilings import max_res, shown_ceiling
from benchmark.reporting.sample_status import OOM, finished, is_oom, run_cell, status_notes, unmade_cell, unmade_counts
from benchmark.reporting.plots import memory_and_time_against_side
from benchmark.metrics.registry import TEXT_TO_IMAGE, report_columns, run_task
from benchmark.runs.records import on_set_items
from benchmark.reporting.provenance import NOT_RUN, NOT_SCORED, ceiling_provenance, model_provenance

PICK_RULE = "most images, then newest"
NO_PAPER_FIGURES = "The paper has no figures for this data set (it reports MA-LAION-COCO and MA-COCO)."
MIB_PER_GIB = 1024


@dataclass(frozen=True)
class Group:
    """Runs that are comparable: same data set build, same output sizes."""

    dataset: Optional[str]  # data set name; None: prompts given on the command line
    manifest: Optional[str]
    sizes: tuple[tuple[int, int], ...]

    @property
    def title(self) -> str:
        if self.dataset is None:
            data = "prompts without a data set"
        else:
            data = paper.DATASET_NAMES.get(self.dataset, self.dataset)
            if self.manifest:
                data += f" (manifest {self.manifest[:12]})"
        if not self.sizes:
            return f"{data}: not run"
        sizes = [f"{h}×{w}" for h, w in self.sizes]
        plan = ", ".join(sizes) if len(sizes) <= 3 else f"{len(sizes)} sizes, {sizes[0]} … {sizes[-1]}"
        return f"{data} at {plan}"


def group_of(result: dict) -> Group:
    dataset = result.get("dataset") or {}
    sizes = tuple(sorted({tuple(row["size"]) for row in result["per_image"]}))
    return Group(dataset.get("name"), dataset.get("manifest_hash"), sizes)


def pick(runs: list[dict]) -> dict:
    """The run a cell shows (see PICK_RULE); ``runs`` is in path order, so ties are stable."""
    return max(runs, key=lambda r: (r["samples"], r["environment"]["date"]))


def _pick_note(label: str, runs: list[dict]) -> Optional[str]:
    if len(runs) < 2:
        return None
    shown = pick(runs)
    return (f"{label}: {len(runs)} runs fit; shown the one with the {PICK_RULE} (seed "
            f"{shown['seed']}, steps {shown['steps']}/{shown['sr_steps']}, {shown['samples']} "
            f"images, {shown['environment']['date'][:10]})")


def _finished_samples(result: dict) -> int:
    return result.get("finished_samples", result["samples"])  # runs made before OOM records: all


def _score(result: Optional[dict], metric: str, digits: int = 2) -> str:
    if result is None:
        return NOT_RUN
    if not _finished_samples(result):
        return run_cell(result)
    scores = result.get("scores")
    if scores is None:
        return NOT_SCORED
    value = scores.get(metric)
    if value is None:
        return "skipped"
    bounds = (scores.get("intervals") or {}).get(metric)
    return f"{value:.{digits}f}" + (f" [{bounds['low']:.{digits}f}, {bounds['high']:.{digits}f}]" if bounds else "")


def extra_scores(runs: list[dict]) -> list[tuple[str, str, int]]:
    """The registered metrics with a report column (their ``column``) that any of ``runs`` has: (key in scores,
    column, digits); runs scored before a metric existed have none."""
    return [extra for extra in report_columns() if any(extra[0] in (r.get("scores") or {}) for r in runs)]


def extra_cells(result: Optional[dict], extras: list[tuple[str, str, int]]) -> dict:
    """The cells of ``extras``, with the spread over subsets (``<metric>_std``) where it is scored without a
    bootstrap interval (runs scored before intervals)."""
    cells = {}
    for metric, column, digits in extras:
        cells[column] = _score(result, metric, digits)
        spread = ((result or {}).get("scores") or {}).get(f"{metric}_std")
        if spread is not None and cells[column][:1].isdigit() and "[" not in cells[column]:
            cells[column] += f" ± {spread:.{digits}f}"
    return cells


def _notes(label: str, runs: list[dict], result: Optional[dict], metrics: tuple[str, ...]) -> list[str]:
    """The notes on the run a cell shows: metrics skipped (but where every sample ran out of
    memory or failed: the cells say so), which of several runs fit, how many samples ran out of memory or
    failed, and why they failed."""
    if result is None:
        return []
    skipped = (result.get("scores") or {}).get("skipped", {}) if _finished_samples(result) else {}
    return ([f"{label}: {metric} skipped: {skipped[metric]}" for metric in metrics if metric in skipped]
            + list(filter(None, [_pick_note(label, runs)])) + status_notes(label, result["per_image"]))


def text_to_image(result: dict) -> bool:
    return run_task(result) == TEXT_TO_IMAGE


def _paper(value) -> str:
    if value is None:
        return "–"
    return value if isinstance(value, str) else f"{value:.2f}"


def _measured(result: Optional[dict]) -> dict:
    """Images, seconds and peak memory of the run's finished samples (the runner's means leave
    out-of-memory and failed samples out); OOM or failed where none finished."""
    if result is None:
        return {"images": NOT_RUN, "s / image": NOT_RUN, "peak memory (GiB)": NOT_RUN}
    if not _finished_samples(result):
        return {"images": 0, "s / image": run_cell(result), "peak memory (GiB)": run_cell(result)}
    return {"images": _finished_samples(result), "s / image": f"{result['seconds_per_image']:.2f}",
            "peak memory (GiB)": f"{result['peak_memory_mib'] / MIB_PER_GIB:.2f}"}


def _how(shown: list[dict]) -> str:
    return model_provenance(shown) if shown else "- no runs: every row is not run"


def _section(title: str, how: str, caption: str, frame: pd.DataFrame | str, notes: list[str]) -> str:
    """A table (or ready markdown) headed by how it was made, its caption and notes under it."""
    body = frame if isinstance(frame, str) else frame.to_markdown(index=False, disable_numparse=True)
    lines = [f"### {title}", "", "How these numbers were made:", how, "", caption, "", body, ""]
    if notes:
        lines += ["Notes:", *[f"- {note}" for note in notes], ""]
    return "\n".join(lines)


def _groups(results: list[dict], methods: tuple[str, ...], paper_datasets) -> dict[Group, dict[str, list[dict]]]:
    """Runs of ``methods`` on a data set, by group and method; the paper's data sets appear even when empty.

    Runs not on the set's own items (``--prompt``, ``--size``) are not compared here: they figure in
    Figure 7, the base models' tables and "Runs without a data set".

    Groups on the paper's data sets come first (in the paper's order), the others by title.
    """
    grouped: dict[Group, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        if result["method"] in methods and on_set_items(result):
            grouped[group_of(result)][result["method"]].append(result)
    for dataset in paper_datasets:
        if not any(group.dataset == dataset for group in grouped):
            grouped[Group(dataset, None, ())] = defaultdict(list)
    order = list(paper_datasets)
    return dict(sorted(grouped.items(), key=lambda kv: (
        order.index(kv[0].dataset) if kv[0].dataset in order else len(order), kv[0].title)))


def paper_arad(results: list[dict]) -> list[dict]:
    """Runs whose ARAD is the paper's (all nine ratios, or untrained on paper-arch): Tables 1
    and 2; the 3- and 5-ratio LoRAs belong to Table 3 alone."""
    return [r for r in results if trained_ratios(r) in (None, len(ARAD_BUCKETS))]


def table1(results: list[dict], ceilings: list[dict] = ()) -> str:
    """Table 1: the six pipelines, on every group of runs; max res. from the profile's ceiling searches."""
    blocks = []
    names = tuple(with_row("table1"))
    for group, by_method in _groups(paper_arad(results), names, [paper.TABLE1_DATASET]).items():
        rows, notes, shown = [], [], []
        extras = extra_scores([r for runs in by_method.values() for r in runs])
        for method in names:
            runs = by_method.get(method, [])
            result = pick(runs) if runs else None
            shown += [result] if result else []
            figures = paper.TABLE1.get(method, dict.fromkeys(("ratio", "tile", "overlap", "max_res", "seam"), "–"))
            rows.append({"method": method, "ratio": figures["ratio"], "tile": figures["tile"],
                         "overlap": figures["overlap"], "FID↓": _score(result, "fid"),
                         **extra_cells(result, extras), "IS↑": _score(result, "inception_score"), "CLIP↑": _score(result, "clip_score"),
                         "seam score": _score(result, "seam_score", 3), **_measured(result),
                         "max res.": max_res(shown_ceiling(ceilings, method)),
                         "paper max res.": figures["max_res"], "paper seam": figures["seam"],
                         "paper FID↓": _paper(figures.get("fid")), "paper IS↑": _paper(figures.get("is")),
                         "paper CLIP↑": _paper(figures.get("clip"))})
            notes += _notes(method, runs, result, ("fid", "inception_score", "clip_score", "seam_score"))
        caption = ("Paper columns: Table 1, MM-CelebA-HQ, 32 GB GPU (max res.: the largest square "
                   "that fits). Our max res.: the ceiling search under the budget named (32 GiB "
                   "where searched, else the largest budget searched). ratio S/A: single or any "
                   "aspect ratio in stage I.")
        blocks.append(_section(f"Table 1 — full pipeline: {group.title}",
                               _how(shown) + "\n" + ceiling_provenance(list(ceilings)), caption,
                               pd.DataFrame(rows), notes))
    return "\n".join(blocks)


def _fid_per_ratio(picked: dict[str, Optional[dict]], label) -> Optional[pd.DataFrame]:
    per_ratio = {method: ((r or {}).get("scores") or {}).get("fid_per_ratio") or {}
                 for method, r in picked.items()}
    ratios = sorted({ratio for figures in per_ratio.values() for ratio in figures},
                    key=lambda hw: tuple(int(side) for side in hw.split("x")))
    if not ratios:
        return None
    return pd.DataFrame([{"size": ratio, **{label(method): (f"{figures[ratio]:.2f}" if ratio in figures else "–")
                                            for method, figures in per_ratio.items()}}
                         for ratio in ratios])


def table2(results: list[dict]) -> str:
    """Table 2: stage I alone (SD 2.1, MultiDiffusion, ARAD), one table per data set."""
    blocks = []
    order = list(paper.TABLE2_NAMES)  # the paper's row order; methods it does not have after
    names = tuple(sorted(with_row("table2"), key=lambda m: order.index(m) if m in order else len(order)))
    for group, by_method in _groups(paper_arad(results), names, list(paper.TABLE2)).items():
        theirs = paper.TABLE2.get(group.dataset, {})
        rows, notes, picked = [], [], {}
        extras = extra_scores([r for runs in by_method.values() for r in runs])
        for method in names:
            runs = by_method.get(method, [])
            result = picked[method] = pick(runs) if runs else None
            figures = theirs.get(method, {})
            rows.append({"method": f"{paper.TABLE2_NAMES.get(method, method)} ({method})",
                         "FID↓": _score(result, "fid"), **extra_cells(result, extras),
                         "IS↑": _score(result, "inception_score"),
                         "CLIP↑": _score(result, "clip_score"), **_measured(result),
                         "paper FID↓": _paper(figures.get("fid")), "paper IS↑": _paper(figures.get("is")),
                         "paper CLIP↑": _paper(figures.get("clip"))})
            notes += _notes(method, runs, result, ("fid", "inception_score", "clip_score"))
        caption = ("Paper columns: Table 2, stage I alone at the data set's 21 sizes (CLIP decimals "
                   "lost in the source)." if theirs else
                   NO_PAPER_FIGURES)
        section = _section(f"Table 2 — stage I alone: {group.title}", _how([r for r in picked.values() if r]),
                           caption, pd.DataFrame(rows), notes)
        per_ratio = _fid_per_ratio(picked, lambda m: f"{paper.TABLE2_NAMES.get(m, m)} FID")
        if per_ratio is not None:
            section += "\n".join(["FID per size:", "", per_ratio.to_markdown(index=False, disable_numparse=True), ""])
        blocks.append(section)
    return "\n".join(blocks)


def trained_ratios(result: dict) -> Optional[int]:
    """How many aspect-ratio buckets the run's ARAD LoRA was trained on; None: untrained."""
    buckets = (result.get("lora") or {}).get("trained_buckets")
    return len(buckets) if buckets else None


def table3(results: list[dict]) -> str:
    """Table 3: ARAD (its method at the target size) by the number of ratios its LoRA was trained on."""
    blocks, arad = [], with_row("table3")[0]
    for group, by_method in _groups(results, (arad,), list(paper.TABLE3)).items():
        theirs = paper.TABLE3.get(group.dataset, {})
        by_count = defaultdict(list)
        for result in by_method.get(arad, []):
            if (result.get("lora") or {}).get("kind") != EXTERNAL_LORA:  # another tool's: its buckets are unknown
                by_count[trained_ratios(result)].append(result)
        counts = sorted(set(paper.TABLE3["ma-coco"]) | {c for c in by_count if c is not None})
        counts += [None] if None in by_count else []
        rows, notes, shown = [], [], []
        extras = extra_scores(by_method.get(arad, []))
        for count in counts:
            runs = by_count.get(count, [])
            result = pick(runs) if runs else None
            shown += [result] if result else []
            label = f"{count} ratios" if count else "untrained LoRA"
            figures = theirs.get(count, {})
            rows.append({"ARAD trained on": label, "FID↓": _score(result, "fid"), **extra_cells(result, extras),
                         "IS↑": _score(result, "inception_score"), "CLIP↑": _score(result, "clip_score"),
                         **_measured(result), "paper FID↓": _paper(figures.get("fid")),
                         "paper IS↑": _paper(figures.get("is"))})
            notes += _notes(label, runs, result, ("fid", "inception_score", "clip_score"))
        caption = ("Paper columns: Table 3, ARAD trained on 3 / 5 / 9 ratios; our rows group "
                   f"{arad} runs by their LoRA's trained buckets." if theirs else
                   NO_PAPER_FIGURES)
        blocks.append(_section(f"Table 3 — ARAD by trained ratios: {group.title}", _how(shown), caption,
                               pd.DataFrame(rows), notes))
    return "\n".join(blocks)


def memory_points(results: list[dict]) -> dict[tuple[str, int], dict]:
    """One point per (method, square side): the picked run's peak memory and mean seconds
    over its finished images at that side; where none was made, ``unmade`` (OOM, failed) and the peak
    memory they reached."""
    candidates = defaultdict(list)
    for result in results:
        if text_to_image(result):
            for side in {row["size"][0] for row in result["per_image"] if row["size"][0] == row["size"][1]}:
                candidates[(result["method"], side)].append(result)
    points = {}
    for key, runs in candidates.items():
        result = pick(runs)
        rows = [row for row in result["per_image"] if row["size"] == [key[1], key[1]]]
        done = finished(rows)
        points[key] = {"run": result, "runs": runs, "rows": rows, "unmade": None if done else unmade_cell(*unmade_counts(rows)),
                       "gib": max(row["peak_memory_mib"] for row in done or rows) / MIB_PER_GIB,
                       "seconds": float(np.mean([row["seconds"] for row in done])) if done else None}
    return points


def _paper_memory(value) -> str:
    if value is None:
        return f"out of memory ({paper.FIGURE7_BUDGET_GB} GB)"
    return value if isinstance(value, str) else f"{value:.2f}"


def _trials(ceilings: list[dict]) -> dict[tuple[str, int, str], dict]:
    """Every ceiling-search trial by (method, side, budget)."""
    return {(c["method"], trial["side"], c["budget"]["text"]): trial for c in ceilings for trial in c["trials"]}


def _trial_cell(trial: Optional[dict]) -> str:
    """A ceiling-search trial's peak memory; OOM with the memory reached where it was measured
    (a trial whose process was killed has none)."""
    if trial is None:
        return "–"
    if trial["status"] == "timeout":
        return f"past the {trial['time_limit_s']:g} s time limit"
    if trial["status"] == "failed":
        return "failed (not OOM)"
    if trial["peak_memory_mib"] is None:
        return OOM
    gib = trial["peak_memory_mib"] / MIB_PER_GIB
    return f"{OOM} (reached {gib:.2f})" if is_oom(trial) else f"{gib:.2f}"


def _plot(points: dict, ceilings: list[dict], profile: str, figures: Path) -> Path:
    ours, searches, out_of_memory = defaultdict(list), defaultdict(list), defaultdict(list)
    for (method, side), point in points.items():
        if point["unmade"] == OOM:
            out_of_memory[method].append((side, point["gib"]))
        elif point["unmade"] is None:
            ours[method].append((side, point["gib"], point["seconds"]))
    for (method, side, budget), trial in _trials(ceilings).items():
        if trial["peak_memory_mib"] is not None and trial["status"] in ("ok", "oom"):
            gib = trial["peak_memory_mib"] / MIB_PER_GIB
            (out_of_memory[method] if is_oom(trial) else searches[(method, budget)]).append((side, gib))
    theirs = {method: [(side, gb) for side, gb in sides.items() if isinstance(gb, float)]
              for method, sides in paper.FIGURE7.items()}
    budgets = {c["budget"]["text"]: c["budget"]["bytes"] / 1024 ** 3 for c in ceilings}
    return memory_and_time_against_side(dict(ours), theirs, f"{profile}: peak memory and time per image "
                                        "against the square side", figures / f"{profile}-memory.png",
                                        dict(searches), dict(out_of_memory), budgets)


def figure7(results: list[dict], profile: str, figures: Path, ceilings: list[dict] = ()) -> str:
    """Figure 7 as a table (our points and ceiling-search trials beside the paper's) and a plot under ``figures``."""
    points, trials = memory_points(results), _trials(ceilings)
    budget_bytes = {c["budget"]["text"]: c["budget"]["bytes"] for c in ceilings}
    budgets = sorted(budget_bytes, key=budget_bytes.get)  # smallest first
    keys = (set(points) | {(method, side) for method, side, _ in trials}
            | {(method, side) for method, sides in paper.FIGURE7.items() for side in sides})
    order = list(methods())
    rows, notes = [], []
    for method, side in sorted(keys, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k)):
        point = points.get((method, side))
        memory = seconds = NOT_RUN
        if point:
            memory = point["unmade"] or f"{point['gib']:.2f}"
            seconds = point["unmade"] or f"{point['seconds']:.2f}"
            label = f"{method} at {side}²"
            notes += filter(None, [_pick_note(label, point["runs"])])
            notes += status_notes(label, point["rows"])
        rows.append({"method": method, "size": f"{side}×{side}", "peak memory (GiB)": memory, "s / image": seconds,
                     **{f"ceiling search {budget} (GiB)": _trial_cell(trials.get((method, side, budget)))
                        for budget in budgets},
                     "paper peak memory (GB)": _paper_memory(paper.FIGURE7.get(method, {}).get(side, "–"))})
    caption = ("Paper columns: Figure 7, peak GPU memory on a 32 GB card. Our points: every "
               "square size among the images of a method's runs (e.g. `--size 2048x2048`); "
               "peak memory of that size's finished images, seconds their mean; OOM: every "
               "image of that size ran out of memory (failed: the method raised, see the notes). Ceiling-search columns: the trials of "
               "the searches named above (one step per stage, so no seconds), OOM with the "
               "memory reached when it failed.")
    shown = list({id(p["run"]): p["run"] for p in points.values()}.values())
    how = _how(shown) + ("\n" + ceiling_provenance(list(ceilings)) if ceilings else "")
    section = _section("Figure 7 — peak memory against resolution", how, caption, pd.DataFrame(rows), notes)
    if points or trials:
        plot = _plot(points, list(ceilings), profile, figures)
        section += f"\n![peak memory against resolution]({plot.relative_to(figures.parent).as_posix()})\n"
    return section

