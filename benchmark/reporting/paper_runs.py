"""The runs behind the paper's Tables 1, 2, 3, 4, 6, 7 and Figure 7 on a model profile, and behind each base
model's table (:mod:`benchmark.reporting.base_model_tables`), as run specifications.

``python -m benchmark tables`` (:func:`benchmark.api.tables`) runs them and writes the report.
Each run resumes, so a second call recomputes nothing, and a run that another command already
made is reused. Which methods fill which table is the registry's (``Method.rows``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Mapping, Optional

from baselines.base_models import DEFAULT_MODEL, base_models, get_base_model
from baselines.registry import PROMPTS, get_method, stage2_alone, with_row
from benchmark.spec import RunSpec

TABLE3_BUCKETS = (3, 5, 9)
#: Stage II alone on the data set, at the profile's default tile, overlap and offset range: the
#: rows of Table 4 that Tables 6 and 7 share (offset range 32, overlaps 0 and 32 in the paper's units).
STAGE2_TILINGS = ("nonoverlap", "explicit", "implicit")
#: Square sides of Figure 7 per profile (every text-to-image method runs at each: one plot of memory against
#: size for all); the paper's card ran out of memory from 4096² on SR-Plus. On tiny, 2048² of the untiled
#: methods costs minutes of CPU per image (attention over every latent pixel), so tiny stops at 1024².
FIGURE7_SIDES = {"tiny": (512, 1024), "paper-arch": (1024, 2048, 4096), "paper": (1024, 2048, 4096)}
#: The per-model tables' square sides as multiples of the model's native side: the field compares on SDXL at 2048²
#: and 4096² (2× and 4×; SD 2.1: 1024², 2048²). On tiny, stand-ins a quarter of those (½× and 1×: SDXL 512², 1024²),
#: as Figure 7's tiny sides are: tiny SDXL at 2048² would spend minutes of CPU per image on attention.
MODEL_TABLE_SCALES = {"tiny": (0.5, 1), "paper-arch": (2, 4), "paper": (2, 4)}


def table3_out(runs: Path, profile: str, dataset: str, buckets: int, budget: Optional[str] = None) -> Path:
    """Table 3's runs differ only in their LoRA, so each gets its own folder (a budget makes another run)."""
    method = with_row("table3")[0]
    return Path(runs) / profile / method / (f"table3-{Path(dataset).name}-buckets{buckets}"
                                            + (f"-mem{budget}" if budget else ""))


def model_table_sides(profile: str, model: str) -> tuple[int, ...]:
    """The square sides of ``model``'s table on ``profile`` (:data:`MODEL_TABLE_SCALES`)."""
    return tuple(int(min(get_base_model(model).native_size) * scale) for scale in MODEL_TABLE_SCALES[profile])


def model_table_specs(common: RunSpec, models: tuple[str, ...]) -> list[RunSpec]:
    """The runs of each model's table: every text-to-image method of the tables that runs on it, at its sides."""
    tabled = dict.fromkeys(with_row("table1") + with_row("table2") + with_row("all-methods") + with_row("model-tables"))
    return [replace(common, method=name, model=model, size=(side, side))
            for model in models for side in model_table_sides(common.profile, model) for name in tabled
            if get_method(name).inputs == PROMPTS and model in get_method(name).model_names]


def specs(common: RunSpec, sides: Optional[tuple[int, ...]] = None,
          loras: Optional[Mapping[int, str]] = None, model: Optional[str] = None) -> list[RunSpec]:
    """Every run of the tables from ``common`` (profile, data set, limit, device, runs, budget...):
    Tables 1 and 2 and the other methods of the "All methods" table, stage II alone per tiling, Table 3
    only for the LoRAs given, Figure 7's sides, then each base model's table; ``model``: that model's table alone
    (the paper's tables too where it is the default model)."""
    if model is not None and not get_base_model(model).paper_tables:
        return model_table_specs(common, (get_base_model(model).name,))
    runs = [replace(common, method=name)
            for name in dict.fromkeys(with_row("table1") + with_row("table2") + with_row("all-methods"))]
    runs += [replace(common, method=stage2_alone().name, tiling=tiling) for tiling in STAGE2_TILINGS]
    for buckets, lora in sorted((loras or {}).items()):
        runs.append(replace(common, method=with_row("table3")[0], lora=str(lora),
                            out=table3_out(common.runs, common.profile, common.dataset, buckets,
                                           common.memory_budget)))
    for side in sides or FIGURE7_SIDES[common.profile]:
        for name in with_row("figure7"):
            runs.append(replace(common, method=name, size=(side, side), limit=1))
    return runs + model_table_specs(common, (DEFAULT_MODEL,) if model else tuple(base_models()))
