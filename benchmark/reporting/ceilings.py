"""Ceiling searches: the largest square side a method completes under a memory budget.

A search writes ``<runs>/ceiling/<profile>/<method>-<budget>/ceiling.json`` with its trials
(one per side tried: ``ok``, ``oom``, ``timeout`` or ``failed``, the peak memory reached). Table 1's measured
"max res." and Figure 7's ceiling-search points come from these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from baselines.base_models import DEFAULT_MODEL
from benchmark.runs.ceiling import FOLDER  # under the runs folder; the trials' own runs live there too
from benchmark.runs.records import model_of, read_json

PAPER_BUDGET_BYTES = 32 * 1024 ** 3  # the paper's 32 GB card: preferred where measured
NOT_MEASURED = "not measured"


def load_ceilings(runs: Path, profile: str) -> list[dict]:
    """Every ceiling search of ``profile`` under ``runs``, in path order."""
    return [read_json(path) for path in sorted((Path(runs) / FOLDER / profile).glob("*/ceiling.json"))]


def shown_ceiling(ceilings: list[dict], method: str, model: str = DEFAULT_MODEL) -> Optional[dict]:
    """The search Table 1 shows for ``method`` on base ``model``: under 32 GiB where there is one, else the largest
    budget."""
    searches = [c for c in ceilings if c["method"] == method and model_of(c) == model]
    return max(searches, key=lambda c: (c["budget"]["bytes"] == PAPER_BUDGET_BYTES, c["budget"]["bytes"]),
               default=None)


def max_res(ceiling: Optional[dict]) -> str:
    """Table 1's cell: "4096² under 4GiB", "≥ 18432² …" when the largest side tried completed."""
    if ceiling is None:
        return NOT_MEASURED
    budget = ceiling["budget"]["text"]
    if not ceiling.get("complete", True):
        return f"search under {budget} not finished"
    if ceiling.get("limited_by_time"):
        stopped = max(t["side"] for t in ceiling["trials"] if t["status"] == "timeout")
        return (f"≥ {ceiling['ceiling'] or 0}² under {budget} ({stopped}² past the "
                f"{ceiling['trial_timeout_s']:g} s time limit)")
    if ceiling.get("stopped_by_failure"):
        failed = max(t["side"] for t in ceiling["trials"] if t["status"] == "failed")
        return f"≥ {ceiling['ceiling'] or 0}² under {budget} (the method failed at {failed}², not OOM)"
    if ceiling["ceiling"] is None:
        return f"none under {budget} (OOM from {min(t['side'] for t in ceiling['trials'])}²)"
    bound = "≥ " if ceiling["ceiling_is_lower_bound"] else ""
    return f"{bound}{ceiling['ceiling']}² under {budget}"
