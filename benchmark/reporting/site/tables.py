"""The site's tables: every scored run of a profile, one row each, as cells with a sort key.

The markdown tables pick one run per method and cell; a web page can show them all and let the
reader sort, so here every run is a row, grouped by data set build as "All methods" is. Each cell
keeps the markdown report's text (the same helpers format it, so the two never disagree: a score
with its interval, "not scored", "OOM", "skipped") and adds what the page needs: a number to sort
by, taken from the run's own record, never recomputed, and the interval apart so the page can set
it smaller. A row carries its provenance lines, which the page shows one click away.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

from baselines.registry import methods
from benchmark.reporting import paper
from benchmark.reporting.all_methods import _paper_figures
from benchmark.reporting.ceilings import max_res, shown_ceiling
from benchmark.reporting.model_tables import _measured, _paper, _score, extra_scores
from benchmark.reporting.provenance import model_provenance

#: The score columns every table has, as in the markdown's "All methods"; registered extras follow.
SCORES = (("fid", "FID↓", 2), ("inception_score", "IS↑", 2), ("clip_score", "CLIP↑", 2),
          ("seam_score", "seam score", 3))
PAPER = (("fid", "paper FID↓"), ("is", "paper IS↑"), ("clip", "paper CLIP↑"))
NO_DATA_SET = "prompts without a data set"


@dataclass(frozen=True)
class Cell:
    """What a table cell shows (``text``, ``interval`` set apart) and what it sorts by (``sort``: a number,
    or None for cells without one, which sort last)."""

    text: str
    sort: Optional[float] = None
    interval: str = ""


@dataclass
class Table:
    """One data set build (or the runs without one) on one profile: its columns, rows and each row's run."""

    title: str
    dataset: Optional[str]
    columns: list[str]
    scores: list[tuple[str, str, int]]  # (metric, column, digits) of the score columns
    rows: list[list[Cell]] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)

    def points(self, metric: str) -> list[tuple[str, float, Optional[float], Optional[float]]]:
        """(run label, score, interval low, high) of every run scored on ``metric``, for its plot."""
        points = []
        for run in self.runs:
            scores = run.get("scores") or {}
            value = _number(scores.get(metric))
            if value is not None:
                bounds = (scores.get("intervals") or {}).get(metric) or {}
                points.append((f"{run['method']} {run['environment']['date'][:10]}", value, bounds.get("low"),
                               bounds.get("high")))
        return points

    def provenance(self, index: int) -> list[str]:
        """The markdown's provenance bullets of one row's run, without their markdown."""
        lines = model_provenance([self.runs[index]]).splitlines()
        return [line.removeprefix("- ").replace("**", "").replace("`", "") for line in lines]


def _number(value) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def score_cell(result: dict, metric: str, digits: int) -> Cell:
    """The markdown's cell, "0.66 [0.60, 0.71]", split into value and interval, sorted by the recorded score."""
    text = _score(result, metric, digits)
    value, bracket, interval = text.partition(" [")
    return Cell(value, _number((result.get("scores") or {}).get(metric)), bracket.strip() + interval)


def _sizes(result: dict) -> str:
    sizes = sorted({tuple(row["size"]) for row in result["per_image"]})
    return ", ".join(f"{h}×{w}" for h, w in sizes) if len(sizes) <= 3 else f"{len(sizes)} sizes"


def _order(result: dict) -> tuple:
    order = list(methods())
    return (order.index(result["method"]) if result["method"] in order else len(order), result["method"],
            result["environment"]["date"])


def _row(result: dict, scores: list[tuple[str, str, int]], ceilings: list[dict], dataset: Optional[str]) -> list[Cell]:
    measured = _measured(result)
    ceiling = shown_ceiling(ceilings, result["method"])
    figures = _paper_figures(dataset, result["method"]) if dataset else {}
    cells = [Cell(result["method"]), Cell(result.get("model") or "–"), Cell(_sizes(result)),
             Cell(str(measured["images"]), _number(measured["images"])),
             *[score_cell(result, metric, digits) for metric, _, digits in scores],
             Cell(measured["s / image"], _number(result.get("seconds_per_image"))),
             Cell(measured["peak memory (GiB)"], _number(result.get("peak_memory_mib"))),
             Cell(max_res(ceiling), _number((ceiling or {}).get("ceiling")))]
    if _has_paper(dataset):
        cells += [Cell(_paper(figures.get(key)), _number(figures.get(key))) for key, _ in PAPER]
    return cells + [Cell(result["environment"]["date"][:10])]


def _has_paper(dataset: Optional[str]) -> bool:
    return dataset in paper.TABLE2 or dataset == paper.TABLE1_DATASET


def site_tables(results: list[dict], ceilings: list[dict] = ()) -> list[Table]:
    """One table per data set build (then one of the runs without a data set) of one profile's scored runs;
    ``ceilings``: the profile's ceiling searches, for max res."""
    builds = defaultdict(list)
    for result in results:
        dataset = result.get("dataset") or {}
        builds[(dataset.get("name") or "", dataset.get("manifest_hash") or "")].append(result)
    tables = []
    for (name, manifest), runs in sorted(builds.items(), key=lambda kv: (not kv[0][0], kv[0])):
        runs = sorted(runs, key=_order)
        scores = [*SCORES, *extra_scores(runs)]
        title = (paper.DATASET_NAMES.get(name, name) + (f" (manifest {manifest[:12]})" if manifest else "")
                 if name else NO_DATA_SET)
        columns = ["method", "model", "size", "images", *[column for _, column, _ in scores], "s / image",
                   "peak memory (GiB)", "max res.", *([column for _, column in PAPER] if _has_paper(name) else []),
                   "date"]
        table = Table(title, name or None, columns, scores, runs=runs)
        table.rows = [_row(result, scores, list(ceilings), name or None) for result in runs]
        tables.append(table)
    return tables
