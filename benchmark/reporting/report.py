"""Markdown reports from a folder of runs, in the layout of the paper's tables.

``oracle.md`` holds the tiling study on the weight-free oracle (Tables 4, 6, 7); each model
profile gets ``<profile>.md`` with Tables 1, 2, 3 and Figure 7 (with the profile's ceiling
searches, ``ceiling/<profile>/``, in Table 1's max res. and in Figure 7) and its VAE tiling studies. Every table is headed by
how its numbers were made and shows the paper's figures beside ours; rows that were not
run are shown as not run, never left out silently. Plots go under ``figures/``.
"""

from __future__ import annotations

from pathlib import Path

from baselines.models import PROFILES as MODEL_PROFILES
from benchmark.reporting import ceilings
from benchmark.reporting.model_tables import REPORTED_METHODS, profile_report
from benchmark.reporting.oracle_tables import oracle_tables
from benchmark.reporting.vae_tables import vae_tables
from benchmark.runs.records import read_json, write_atomic


def load_results(runs: Path) -> list[dict]:
    """Every run under ``runs`` but a ceiling search's trials (one step per stage: they are
    read through their ``ceiling.json``)."""
    runs = Path(runs)
    return [read_json(path) for path in sorted(runs.rglob("results.json"))
            if path.relative_to(runs).parts[0] != ceilings.FOLDER]


def _made_by(runs: Path) -> str:
    return f"Made by `python -m benchmark report` from the runs in `{runs}`.\n\n"


def write_report(runs: Path, out: Path) -> list[Path]:
    """Render every report that the runs under ``runs`` allow; returns the files written."""
    results = load_results(runs)
    out, figures = Path(out), Path(out) / "figures"
    written = []
    oracle = oracle_tables(results, figures)
    if oracle:
        path = out / "oracle.md"
        write_atomic(path, ("# FSTD tiling on the weight-free oracle\n\n" + _made_by(runs)
                            + oracle).encode())
        written.append(path)
    for profile in MODEL_PROFILES:
        runs_of_profile = [r for r in results
                           if r.get("profile") == profile and r.get("method") in REPORTED_METHODS]
        searches = ceilings.load_ceilings(runs, profile)
        vae = vae_tables(results, profile)
        if runs_of_profile or searches or vae:
            path = out / f"{profile}.md"
            write_atomic(path, (f"# Any-size pipelines on the `{profile}` profile\n\n" + _made_by(runs)
                                + profile_report(runs_of_profile, profile, figures, searches)
                                + ("\n" + vae if vae else "")).encode())
            written.append(path)
    return written
