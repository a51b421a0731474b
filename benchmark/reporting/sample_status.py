"""Samples that were not made: out of memory, or failed.

A model run's sample records and its ``per_image`` rows say ``"status": "ok"``, ``"oom"``
or ``"failed"`` (runs made before OOM records have none: ok), as do a ceiling search's
trials (``timeout`` too). Neither kind of unmade sample has an image, so means are over
finished samples only. They are told apart everywhere: running out of memory is a
measurement (a cell whose samples all ran out says "OOM", as the paper does), a failure is
the method raising, not a fact about memory (such a cell says "failed", and a note names the
error).
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

from benchmark.runs.runner import finished as is_finished

OOM, FAILED = "OOM", "failed"


def is_oom(row: dict) -> bool:
    """Whether a sample (a ``per_image`` row) or a ceiling-search trial ran out of memory."""
    return row.get("status") == "oom"


def finished(rows: list[dict]) -> list[dict]:
    """The samples that were made."""
    return [row for row in rows if is_finished(row)]


def unmade_counts(rows: list[dict]) -> tuple[int, int]:
    """How many of ``rows`` ran out of memory, and how many failed."""
    return sum(row.get("status") == "oom" for row in rows), sum(row.get("status") == "failed" for row in rows)


def unmade_cell(oom: int, failed: int) -> str:
    """The cell of a run (or a size) none of whose samples was made."""
    return OOM if not failed else FAILED if not oom else f"{OOM}/{FAILED}"


def status_notes(label: str, rows: list[dict]) -> list[str]:
    """"label: k of n samples OOM" where some but not all ran out of memory (a cell whose samples all did
    says OOM itself); "label: j of n samples failed: <error>" wherever any failed."""
    oom, failed = unmade_counts(rows)
    notes = [f"{label}: {oom} of {len(rows)} samples OOM"] if 0 < oom < len(rows) else []
    if failed:
        errors = Counter(row.get("error") or "no error recorded" for row in rows if row.get("status") == "failed")
        error, count = errors.most_common(1)[0]
        more = f" ({count} of them; {len(errors) - 1} other errors)" if len(errors) > 1 else ""
        notes.append(f"{label}: {failed} of {len(rows)} samples failed (the method raised, not out of memory): "
                     f"{error}{more}")
    return notes


def run_cell(result: dict) -> Optional[str]:
    """OOM / failed for a run none of whose samples was made (None where some were)."""
    if result.get("finished_samples", result["samples"]):
        return None
    return unmade_cell(result.get("oom_samples", 0), result.get("failed_samples", 0))
