"""The oracle study: every tiling configuration of the paper's Tables 4, 6 and 7.

One list of configurations, used both to run the study and to find its rows again in a
folder of runs, so that the report and the runs cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from baselines.tiling import TilingConfig


@dataclass(frozen=True)
class StudyRow:
    table: str
    key: object
    label: str
    tiling: TilingConfig


def study_rows() -> list[StudyRow]:
    rows = [
        StudyRow("4", "none", "untiled (reference)", TilingConfig("none")),
        StudyRow("4", "nonoverlap", "no overlap", TilingConfig("nonoverlap")),
        StudyRow("4", "explicit", "explicit overlap 32", TilingConfig("explicit", overlap=32)),
        StudyRow("4", "implicit-fixed", "implicit, fixed offset",
                 TilingConfig("implicit", offset="fixed")),
        StudyRow("4", "implicit-random", "implicit, random offset", TilingConfig("implicit")),
    ]
    rows += [StudyRow("6", r, f"implicit, offset range {r}", TilingConfig("implicit", offset_range=r))
             for r in (16, 32, 48)]
    rows += [StudyRow("7", o, f"explicit, overlap {o}", TilingConfig("explicit", overlap=o))
             for o in (0, 16, 32, 48)]
    return rows


def unique_tilings() -> list[TilingConfig]:
    return list(dict.fromkeys(row.tiling for row in study_rows()))


def tiling_tag(tiling: TilingConfig) -> str:
    """A short name that spells out a tiling: strategy and the parameters it uses."""
    parts = [tiling.strategy]
    if tiling.strategy != "none":
        parts.append(f"t{tiling.tile}")
    if tiling.strategy == "explicit":
        parts.append(f"o{tiling.overlap}")
    if tiling.strategy == "implicit":
        parts += [tiling.offset, f"r{tiling.offset_range}", f"k{tiling.reset_every}",
                  f"fill-{tiling.fill}"]
    if tiling.strategy != "none" and tiling.weighting != "gaussian":
        parts.append(tiling.weighting)
    return "-".join(parts)


def run_tag(tiling: TilingConfig, size: tuple[int, int], steps: int, seed: int) -> str:
    """A directory name that says what a run was: its tiling, size, steps and seed."""
    return f"{tiling_tag(tiling)}-{size[0]}x{size[1]}-s{steps}-seed{seed}"


def default_out(runs: Path, profile: str, method: str, tag: str) -> Path:
    return Path(runs) / profile / method / tag
