"""The runs behind the paper's Tables 1, 2, 3, 4, 6, 7 and Figure 7 on a model profile, as CLI commands.

``python -m benchmark tables`` runs them and writes the report. Each run resumes, so a
second call recomputes nothing, and a run that another command already made is reused.
The commands are the ones a user would type (README, "Scores and reports"), so what the
verb does can be read, and redone by hand, one run at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from benchmark.reporting import paper

TABLE1, TABLE2, FIGURE7 = tuple(paper.TABLE1), tuple(paper.TABLE2_NAMES), tuple(paper.FIGURE7)
TABLE3_BUCKETS = (3, 5, 9)
#: Stage II alone (fstd) on the data set, at the profile's default tile, overlap and offset range: the
#: rows of Table 4 that Tables 6 and 7 share (offset range 32, overlaps 0 and 32 in the paper's units).
STAGE2_TILINGS = ("nonoverlap", "explicit", "implicit")
#: Square sides of Figure 7 per profile; the paper's card ran out of memory from 4096² on SR-Plus.
FIGURE7_SIDES = {"tiny": (512, 1024, 2048), "paper-arch": (1024, 2048, 4096), "paper": (1024, 2048, 4096)}


def table3_out(runs: Path, profile: str, dataset: str, buckets: int) -> Path:
    """Table 3's ``ar-plus`` runs differ only in their LoRA, so each gets its own folder."""
    return Path(runs) / profile / "ar-plus" / f"table3-{Path(dataset).name}-buckets{buckets}"


def commands(profile: str, dataset: str, runs: Path, limit: int | None = None,
             sides: tuple[int, ...] | None = None, loras: Mapping[int, str] | None = None,
             device: str = "cpu") -> list[list[str]]:
    """Every ``python -m benchmark run`` of the tables, as argument lists; Table 3 only for the LoRAs given."""
    common = ["--profile", profile, "--device", device, "--runs", str(runs), "--no-progress"]
    data = ["--dataset", dataset] + ([] if limit is None else ["--limit", str(limit)])
    runs_list = [["run", "--method", method, *data, *common] for method in dict.fromkeys(TABLE1 + TABLE2)]
    runs_list += [["run", "--method", "fstd", "--tiling", tiling, *data, *common] for tiling in STAGE2_TILINGS]
    for buckets, lora in sorted((loras or {}).items()):
        runs_list.append(["run", "--method", "ar-plus", *data, *common, "--lora", str(lora),
                          "--out", str(table3_out(runs, profile, dataset, buckets))])
    for side in sides or FIGURE7_SIDES[profile]:
        for method in FIGURE7:
            runs_list.append(["run", "--method", method, "--size", f"{side}x{side}", "--limit", "1",
                              "--dataset", dataset, *common])
    return runs_list
