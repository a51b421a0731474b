"""The table "All methods on <data set>": every method with runs on one data set build, side by side.

The paper's tables have fixed rows; this one has a row for each method that ran on the
build, built-in or a user's (registered or not any more: a run is shown by what its
results say), with every metric that has a report column, time and memory, and the
paper's figures beside where the paper has them (Table 2 for its data sets, Table 1 for
MM-CelebA-HQ). Methods come in registry order, unknown ones after, by name.

Runs not on a set's own items (``--prompt``, ``--size``) are not comparable with those; they get
their own table, one row per run, rather than being left out of the report.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from baselines.registry import methods
from benchmark.reporting import paper
from benchmark.reporting.ceilings import max_res, shown_ceiling
from benchmark.reporting.model_tables import (_how, _measured, _notes, _paper, _score, _section, extra_cells,
                                              extra_scores, pick)
from benchmark.reporting.provenance import ceiling_provenance
from benchmark.metrics.registry import TEXT_TO_IMAGE, run_task
from benchmark.runs.records import model_of, on_set_items

CAPTION = ("One row per method with runs on this data set build (built-in or a plugin's; `origin` says which), "
           "at whatever sizes its runs have; where several runs of a method fit, the one with the most images, "
           "then the newest. max res.: the method's ceiling search (the largest square completed under the "
           "budget named). Paper columns: Table 2 on MA-LAION-COCO and MA-COCO, Table 1 on MM-CelebA-HQ, "
           "where the paper has the method.")


def _paper_figures(dataset: str, method: str) -> dict:
    if dataset in paper.TABLE2:
        return paper.TABLE2[dataset].get(method, {})
    return paper.TABLE1.get(method, {}) if dataset == paper.TABLE1_DATASET else {}


def _origin(results: dict) -> str:
    return results.get("method_origin") or ("built-in" if results["method"] in methods() else "unregistered")


def all_methods(results: list[dict], ceilings: list[dict] = ()) -> str:
    """One section per data set build that has runs; empty when no run has a data set. ``ceilings``: the
    profile's ceiling searches, for the max res. column."""
    builds = defaultdict(list)
    for result in results:
        dataset = result.get("dataset") or {}
        if on_set_items(result):
            builds[(dataset["name"], dataset.get("manifest_hash") or "")].append(result)
    order = list(methods())
    blocks = []
    for (name, manifest), runs in sorted(builds.items()):
        by_method = defaultdict(list)
        for result in runs:
            by_method[result["method"]].append(result)
        extras = extra_scores(runs)
        rows, notes, shown = [], [], []
        for method in sorted(by_method, key=lambda m: (order.index(m) if m in order else len(order), m)):
            result = pick(by_method[method])
            shown.append(result)
            figures = _paper_figures(name, method)
            rows.append({"method": method, "origin": _origin(result), "task": run_task(result),
                         "FID↓": _score(result, "fid"), **extra_cells(result, extras),
                         "IS↑": _score(result, "inception_score"), "CLIP↑": _score(result, "clip_score"),
                         "seam score": _score(result, "seam_score", 3), **_measured(result),
                         "max res.": max_res(shown_ceiling(ceilings, method)),
                         "paper FID↓": _paper(figures.get("fid")), "paper IS↑": _paper(figures.get("is")),
                         "paper CLIP↑": _paper(figures.get("clip"))})
            notes += _notes(method, by_method[method], result, ())
        title = paper.DATASET_NAMES.get(name, name) + (f" (manifest {manifest[:12]})" if manifest else "")
        how = _how(shown) + ("\n" + ceiling_provenance(list(ceilings)) if ceilings else "")
        blocks.append(_section(f"All methods on {title}", how, CAPTION, pd.DataFrame(rows), notes))
    return "\n".join(blocks)


OWN_INPUTS_TITLE = "Runs at prompts or sizes of their own"
OWN_INPUTS_CAPTION = ("One row per run whose prompts or sizes are not a data set's items (`--prompt`, `--size`): CLIP "
                   "and IS over the run's own images. A run at a size of its own on a data set's captions is "
                   "scored against the set's images too (FID, KID, patch scores), in its base model's table when "
                   "the size is a square of the table's. Runs are not picked or grouped: each is shown.")


def _prompts(result: dict, width: int = 40) -> str:
    prompts = sorted({sample["prompt"] for sample in result.get("samples_plan") or []})
    shown = prompts[0] if len(prompts) == 1 else f"{len(prompts)} prompts" if prompts else "–"
    return shown if len(shown) <= width else shown[:width - 1] + "…"


def own_inputs_runs(results: list[dict]) -> str:
    """The table of every text-to-image run not on a set's own items; empty when there is none."""
    runs = [r for r in results if not on_set_items(r) and run_task(r) == TEXT_TO_IMAGE]
    if not runs:
        return ""
    order = list(methods())
    runs.sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else len(order), r["method"],
                             r["environment"]["date"]))
    extras = extra_scores(runs)
    rows, notes = [], []
    for result in runs:
        sizes = sorted({tuple(row["size"]) for row in result["per_image"]})
        rows.append({"method": result["method"], "model": model_of(result), "origin": _origin(result),
                     "size": ", ".join(f"{h}×{w}" for h, w in sizes), "prompt": _prompts(result),
                     "CLIP↑": _score(result, "clip_score"), "IS↑": _score(result, "inception_score"),
                     **extra_cells(result, extras), **_measured(result), "date": result["environment"]["date"][:10]})
        notes += _notes(f"{result['method']} at {rows[-1]['size']}", [result], result, ())
    return _section(OWN_INPUTS_TITLE, _how(runs), OWN_INPUTS_CAPTION, pd.DataFrame(rows), notes)
