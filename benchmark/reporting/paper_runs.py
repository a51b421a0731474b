"""The runs behind the paper's Tables 1, 2, 3, 4, 6, 7 and Figure 7 on a model profile, as run specifications.

``python -m benchmark tables`` (:func:`benchmark.api.tables`) runs them and writes the report.
Each run resumes, so a second call recomputes nothing, and a run that another command already
made is reused. Which methods fill which table is the registry's (``Method.rows``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Mapping, Optional

from baselines.registry import stage2_alone, with_row
from benchmark.spec import RunSpec

TABLE3_BUCKETS = (3, 5, 9)
#: Stage II alone on the data set, at the profile's default tile, overlap and offset range: the
#: rows of Table 4 that Tables 6 and 7 share (offset range 32, overlaps 0 and 32 in the paper's units).
STAGE2_TILINGS = ("nonoverlap", "explicit", "implicit")
#: Square sides of Figure 7 per profile (every text-to-image method runs at each: one plot of memory against
#: size for all); the paper's card ran out of memory from 4096² on SR-Plus. On tiny, 2048² of the untiled
#: methods costs minutes of CPU per image (attention over every latent pixel), so tiny stops at 1024².
FIGURE7_SIDES = {"tiny": (512, 1024), "paper-arch": (1024, 2048, 4096), "paper": (1024, 2048, 4096)}


def table3_out(runs: Path, profile: str, dataset: str, buckets: int, budget: Optional[str] = None) -> Path:
    """Table 3's runs differ only in their LoRA, so each gets its own folder (a budget makes another run)."""
    method = with_row("table3")[0]
    return Path(runs) / profile / method / (f"table3-{Path(dataset).name}-buckets{buckets}"
                                            + (f"-mem{budget}" if budget else ""))


def specs(common: RunSpec, sides: Optional[tuple[int, ...]] = None,
          loras: Optional[Mapping[int, str]] = None) -> list[RunSpec]:
    """Every run of the tables from ``common`` (profile, data set, limit, device, runs, budget...):
    Tables 1 and 2 and the other methods of the "All methods" table, stage II alone per tiling, Table 3
    only for the LoRAs given, Figure 7's sides."""
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
    return runs
