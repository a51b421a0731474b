"""One table per base model, in the form the field compares high-resolution methods on SDXL (FreeScale,
FouriScale, AccDiffusion, LSRNA...): each method at square sides of 2× and 4× the model's native side
(SDXL 2048² and 4096², SD 2.1 1024² and 2048²; tiny: stand-ins, :data:`paper_runs.MODEL_TABLE_SCALES`),
FID, KID, patch FID and KID, IS and CLIP, each with its interval, then s/image, peak memory and the
largest square side under the memory budget (the model's ceiling searches).

A run belongs to a model's table when its captions come from a data set and every image of it is one square
side; where several fit a cell the model tables' pick rule applies and a note says so. ``tables`` makes these runs
with ``--size`` on a set's captions: the set's images stay the references (FID and KID on resized images, patch
scores on native crops, as the field scores its 2048² and 4096² tables against smaller images). Runs made before
``--size`` kept references have none: their FID, KID and patch forms are skipped with that reason in the notes.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from baselines.base_models import base_models
from baselines.registry import methods
from benchmark.reporting import paper
from benchmark.reporting.ceilings import max_res, shown_ceiling
from benchmark.reporting.model_tables import _measured, _notes, _score, _section, pick, text_to_image
from benchmark.reporting.paper_runs import MODEL_TABLE_SCALES
from benchmark.reporting.provenance import ceiling_provenance, model_provenance
from benchmark.runs.records import model_of, recorded_inputs

#: (key in scores, column, digits): the scores the field reports, each shown with its interval.
SCORES = (("fid", "FID↓", 2), ("kid", "KID↓", 4), ("fid_patch", "patch FID↓", 2), ("kid_patch", "patch KID↓", 4),
          ("inception_score", "IS↑", 2), ("clip_score", "CLIP↑", 2))


def in_paper_tables(record: dict) -> bool:
    """Whether a run's (or ceiling search's) base model fills the paper's tables (its entry's ``paper_tables``;
    a model no longer registered does not)."""
    model = base_models().get(model_of(record))
    return bool(model and model.paper_tables)


def square_side(result: dict):
    """The one square side of every image of the run, else None."""
    sizes = {tuple(row["size"]) for row in result.get("per_image", [])}
    return next(iter(sizes))[0] if len(sizes) == 1 and len(set(next(iter(sizes)))) == 1 else None


def caption(model: str) -> str:
    scales = "; ".join(f"{profile} " + " and ".join(f"{scale:g}×" for scale in scaled)
                       for profile, scaled in MODEL_TABLE_SCALES.items())
    return (f"{base_models()[model].title}'s table as the field reports high-resolution methods: square sides "
            f"at multiples of the model's native {min(base_models()[model].native_size)} px ({scales}), "
            "scores against the data set's images (FID and KID on resized images, patch FID and KID on "
            "native-resolution crops), [low, high]: the run's bootstrap interval; max side: the largest "
            "square that completed in the model's ceiling search under the budget named.")


def _rows(by_cell: dict, ceilings: list[dict], model: str) -> tuple[list[dict], list[str], list[dict]]:
    order = list(methods())
    rows, notes, shown = [], [], []
    for side, method in sorted(by_cell, key=lambda key: (key[0], order.index(key[1]) if key[1] in order else 99)):
        runs = by_cell[(side, method)]
        result = pick(runs)
        shown.append(result)
        rows.append({"size": f"{side}×{side}", "method": method,
                     **{column: _score(result, key, digits) for key, column, digits in SCORES},
                     **_measured(result), "max side": max_res(shown_ceiling(ceilings, method, model))})
        notes += _notes(f"{method} at {side}²", runs, result, tuple(key for key, _, _ in SCORES))
    return rows, notes, shown


def base_model_tables(results: list[dict], ceilings: list[dict] = ()) -> str:
    """A section per registered base model (its runs on each data set build), "not run" where it has none."""
    blocks = []
    for model, base in base_models().items():
        builds = defaultdict(lambda: defaultdict(list))
        for result in results:
            dataset = result.get("dataset") or recorded_inputs(result).get("dataset") or {}
            side = square_side(result)
            if model_of(result) == model and text_to_image(result) and dataset.get("name") and side:
                builds[(dataset["name"], dataset.get("manifest_hash") or "")][(side, result["method"])].append(result)
        searched = [c for c in ceilings if model_of(c) == model]
        if not builds:
            blocks.append(f"### {base.title} (`{model}`)\n\nNot run: `python -m benchmark tables --model {model}` "
                          "makes its runs.\n")
        for (name, manifest), by_cell in sorted(builds.items()):
            rows, notes, shown = _rows(by_cell, searched, model)
            title = paper.DATASET_NAMES.get(name, name) + (f" (manifest {manifest[:12]})" if manifest else "")
            blocks.append(_section(f"{base.title} (`{model}`) on {title}",
                                   model_provenance(shown) + "\n" + ceiling_provenance(searched), caption(model),
                                   pd.DataFrame(rows), notes))
    return "\n".join(blocks)
