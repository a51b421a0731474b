"""The table "How much the protocol moves a score": one run per method under every published protocol.

Papers disagree by twenty FID points on the same method at the same size; this table says how
much of such a gap the evaluation protocol alone can make. Runs scored with
``python -m benchmark score RUN --protocols all`` carry ``scores.protocols.<preset>.<statistic>``
(:mod:`benchmark.metrics.presets`); per data set build, one table per statistic (FID, KID, IS:
only like is compared with like) has a row per method with each preset's value and interval,
the spread across presets in that row, and a last row with the spread across methods under each
preset. A spread across presets as large as the spread across methods means the protocol can
reorder the methods by itself.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional

import pandas as pd

from benchmark.metrics.presets import KINDS, presets
from benchmark.reporting.model_tables import pick

TITLE = "How much the protocol moves a score"
DIGITS = {"fid": 2, "kid": 4, "is": 2}
CAPTION = ("The same images of each method scored under every published protocol (`score --protocols all`; "
           "`list` shows each preset's source, docs/metrics.md which choices the source pins and which are ours): "
           "value [95% bootstrap interval over the generated images]. spread across presets: the largest minus "
           "the smallest value in the row; spread across methods: the same down each column. Where several runs "
           "of a method were scored so, the one with the most images, then the newest.")


def _cell(entry: Optional[dict], digits: int) -> str:
    if not entry or entry.get("value") is None:
        return "—"
    bounds = f" [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]" if entry.get("low") is not None else ""
    return f"{entry['value']:.{digits}f}{bounds}"


def _spread(values: list[Optional[float]], digits: int) -> str:
    present = [v for v in values if v is not None]
    return f"{max(present) - min(present):.{digits}f}" if len(present) >= 2 else "—"


def _published_name(runs: list[dict], preset: str, kind: str) -> str:
    for result in runs:
        record = ((result.get("metric_conventions") or {}).get("protocols") or {}).get(preset)
        if record:
            return record["definition"]["statistics"][kind]
    return KINDS[kind]


def _table(runs_by_method: dict[str, dict], kind: str) -> Optional[str]:
    """The markdown table of one statistic, or None when no preset of the runs reports it."""
    order = [p.name for p in presets()]
    found = {name for r in runs_by_method.values() for name, entry in r["scores"]["protocols"].items() if kind in entry}
    columns = sorted(found, key=lambda n: (order.index(n) if n in order else len(order), n))
    if not columns:
        return None
    digits, rows = DIGITS[kind], []
    values = {method: [((r["scores"]["protocols"].get(p) or {}).get(kind) or {}).get("value") for p in columns]
              for method, r in runs_by_method.items()}
    headers = [f"{p} ({_published_name(list(runs_by_method.values()), p, kind)})" for p in columns]
    for method, result in runs_by_method.items():
        cells = [_cell((result["scores"]["protocols"].get(p) or {}).get(kind), digits) for p in columns]
        rows.append([method, *cells, _spread(values[method], digits)])
    rows.append(["spread across methods", *[_spread([values[m][i] for m in values], digits)
                                            for i in range(len(columns))], ""])
    frame = pd.DataFrame(rows, columns=["method", *headers, "spread across presets"])
    return f"{KINDS[kind]}:\n\n" + frame.to_markdown(index=False, disable_numparse=True) + "\n"


def protocol_spread(results: list[dict]) -> str:
    """The section's body for one profile's runs: a block per data set build with runs scored under the presets;
    empty when no run was."""
    builds = defaultdict(lambda: defaultdict(list))
    for result in results:
        dataset = result.get("dataset") or {}
        if (result.get("scores") or {}).get("protocols") and dataset.get("name"):
            builds[(dataset["name"], dataset.get("manifest_hash") or "")][result["method"]].append(result)
    blocks = []
    for (name, manifest), by_method in sorted(builds.items()):
        shown = {method: pick(runs) for method, runs in sorted(by_method.items())}
        hashes = sorted({r.get("protocol_hash", "?") for r in shown.values()})
        weights = {r.get("metrics_profile") for r in shown.values()}
        tables = [table for kind in KINDS if (table := _table(shown, kind))]
        blocks.append("\n".join([
            f"### {name} (manifest {manifest[:12]})", "",
            f"Metric networks: {', '.join(sorted(w or '?' for w in weights))}"
            + (" (random weights: the spread shows the machinery, not image quality)" if weights - {"paper"} else "")
            + f"; protocol hashes {', '.join(hashes)}.", "", CAPTION, "", *tables]))
    return "\n".join(blocks)
