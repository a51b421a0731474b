"""Samples that ran out of memory.

A model run's sample records and its ``per_image`` rows say ``"status": "ok"`` or
``"oom"`` (runs made before OOM records have none: ok), as do a ceiling search's trials.
An OOM sample has no image and its seconds and peak memory are those reached when it
failed, so means are over finished samples only, and a cell whose samples all ran out of
memory says "OOM", as the paper does.
"""

from __future__ import annotations

from typing import Optional

from benchmark.runs.runner import finished as is_finished

OOM = "OOM"


def is_oom(row: dict) -> bool:
    """Whether a sample (a ``per_image`` row) or a ceiling-search trial ran out of memory."""
    return not is_finished(row)


def finished(rows: list[dict]) -> list[dict]:
    """The samples that did not run out of memory."""
    return [row for row in rows if is_finished(row)]


def oom_note(label: str, failed: int, total: int) -> Optional[str]:
    """"label: k of n samples OOM" where some but not all samples ran out of memory (a cell
    whose samples all did says OOM itself)."""
    return f"{label}: {failed} of {total} samples OOM" if 0 < failed < total else None
