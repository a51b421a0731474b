"""The state that lets an interrupted build resume: ``{out}/.work/``.

* ``params.json``: what is being built; resuming with other parameters is refused,
  since finished files would not match the new plan.
* ``scan.parquet`` and ``skips.json``: the header scan of the source, written once
  it is complete, so a resumed build does not read the source headers again.
* ``journal.jsonl``: one line per written item (with the SHA-256 of its source) or
  per image that failed to decode. Lines are appended and flushed one by one; a
  torn last line (the process died while writing it) is ignored.

Item files themselves are written atomically (temp file + ``os.replace``), so an
item is finished exactly when its journal line exists.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from .errors import StaleBuildError
from .sources import Skip


class BuildState:
    """Resumable progress of one build in ``work_dir``."""

    def __init__(self, work_dir: Path, params: dict):
        self.dir = work_dir
        params_file = work_dir / "params.json"
        if params_file.exists():
            previous = json.loads(params_file.read_text())
            if previous != params:
                raise StaleBuildError(
                    f"{work_dir.parent} holds an unfinished build with other parameters "
                    f"({_differences(previous, params)}); rerun it with the same ones, "
                    f"or use another --out (or delete this one)"
                )
        else:
            work_dir.mkdir(parents=True, exist_ok=True)
            params_file.write_text(json.dumps(params, indent=2, sort_keys=True))
        self.done: dict[tuple[str, str], str] = {}  # (id, size name) -> source sha256
        self.bad: dict[str, tuple[str, str]] = {}  # id -> (reason, detail)
        journal = work_dir / "journal.jsonl"
        if journal.exists():
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    self._apply(json.loads(line))
                except (ValueError, KeyError):
                    continue  # a line torn by an interruption
        self._journal = open(journal, "a", encoding="utf-8")

    def _apply(self, record: dict) -> None:
        if record["event"] == "done":
            self.done[(record["id"], record["size"])] = record["sha256"]
        else:
            self.bad[record["id"]] = (record["reason"], record["detail"])

    def _append(self, record: dict) -> None:
        self._journal.write(json.dumps(record, sort_keys=True) + "\n")
        self._journal.flush()
        self._apply(record)

    def record_done(self, sample_id: str, size: str, sha256: str) -> None:
        self._append({"event": "done", "id": sample_id, "size": size, "sha256": sha256})

    def record_bad(self, sample_id: str, reason: str, detail: str) -> None:
        self._append({"event": "bad", "id": sample_id, "reason": reason, "detail": detail})

    def load_scan(self) -> tuple[pd.DataFrame, list[Skip]] | None:
        """The saved header scan, or None if the scan never finished."""
        if not (self.dir / "skips.json").exists():
            return None
        skips = [Skip(**s) for s in json.loads((self.dir / "skips.json").read_text())]
        return pd.read_parquet(self.dir / "scan.parquet"), skips

    def save_scan(self, candidates: pd.DataFrame, skips: list[Skip]) -> None:
        candidates.to_parquet(self.dir / "scan.parquet", index=False)
        tmp = self.dir / "skips.json.tmp"  # written last: its presence marks a complete scan
        tmp.write_text(json.dumps([s.__dict__ for s in skips]))
        tmp.replace(self.dir / "skips.json")

    def close(self, finished: bool) -> None:
        """Close the journal; a finished build no longer needs its state."""
        self._journal.close()
        if finished:
            shutil.rmtree(self.dir)


def _differences(old: dict, new: dict) -> str:
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys)
