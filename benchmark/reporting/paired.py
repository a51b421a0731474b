"""Paired differences in the reports: is a tiled method better than its no-overlap twin, is the
headline method better than each other one, beyond the noise of the images drawn?

Two runs on the same items with the same seeds were bootstrapped with the same draws
(:mod:`benchmark.metrics.bootstrap`), so the difference of their replicates is a paired
bootstrap of the difference of their scores. For every group of runs on one data set build
and the same items, each tiled method is compared with its twin (the registry's ``twin``)
and the headline method with every other text-to-image method; a cell is A − B with its
interval, starred where the interval excludes 0.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from baselines.registry import headline, methods
from benchmark.metrics.bootstrap import FILE, paired
from benchmark.metrics.registry import TEXT_TO_IMAGE, run_task
from benchmark.reporting.model_tables import pick
from benchmark.runs.records import read_json

CAPTION = ("A − B of each score, with the 95% interval of a paired bootstrap over the images (the same items and "
           "seeds in both runs, resampled together; references fixed); * where the interval excludes 0, i.e. the "
           "difference is more than the noise of the images drawn. Lower is better for FID, KID and the seam score, "
           "higher for IS and CLIP.")


def _comparisons(present: set[str]) -> list[tuple[str, str]]:
    pairs = [(name, method.twin) for name, method in methods().items() if method.twin in present and name in present]
    lead = headline()
    if lead is not None and lead.name in present:
        pairs += [(lead.name, other) for other in sorted(present - {lead.name}) if (lead.name, other) not in pairs]
    return pairs


def _cell(row: dict) -> str:
    if row["difference"] is None:
        return "–"  # a score one of the two runs could not compute
    if row["low"] is None:
        return f"{row['difference']:.4g}"
    star = "*" if row["excludes_zero"] else ""
    return f"{row['difference']:.4g} [{row['low']:.4g}, {row['high']:.4g}]{star}"


def paired_sections(folders: list[tuple[Path, dict]]) -> str:
    """The section body: one table per data set build and set of items with at least one comparison."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    for out, result in folders:
        dataset = result.get("dataset") or {}
        if dataset.get("name") and (out / FILE).is_file() and run_task(result) == TEXT_TO_IMAGE:
            items = tuple((row.get("item"), tuple(row["size"])) for row in result["per_image"])
            groups[(dataset["name"], dataset.get("manifest_hash") or "", items)][result["method"]].append((out, result))
    blocks = []
    for (name, manifest, items), by_method in sorted(groups.items(), key=lambda kv: kv[0][:2]):
        chosen = {}
        for method, runs in by_method.items():  # the run each table shows
            shown = pick([result for _, result in runs])
            chosen[method] = next(pair for pair in runs if pair[1] is shown)
        rows = []
        for a, b in _comparisons(set(chosen)):
            try:
                differences = paired(read_json(chosen[a][0] / FILE), read_json(chosen[b][0] / FILE), 0.95)
            except ValueError:
                continue  # bootstrapped differently: not comparable pairwise
            rows.append({"A vs B": f"{a} vs {b}", **{metric: _cell(row) for metric, row in differences.items()}})
        if rows:
            blocks += [f"### {name} (manifest {manifest[:12]}), {len(items)} items", "", CAPTION, "",
                       pd.DataFrame(rows).fillna("–").to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(blocks)
