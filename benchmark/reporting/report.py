"""Markdown reports from a folder of runs, in the layout of the paper's tables.

``oracle.md`` holds the tiling study on the weight-free oracle (Tables 4, 6, 7); each model
profile gets ``<profile>.md`` with Tables 1, 2, 3, Tables 4, 6, 7 from its ``fstd`` runs and
Figure 7 (with the profile's ceiling searches, ``ceiling/<profile>/``, in Table 1's max res.
and in Figure 7) and its VAE tiling studies. Every table is headed by how its numbers were
made and shows the paper's figures beside ours; rows that were not run are shown as not run,
never left out silently. Both end with pictures of the seams. Plots and pictures go under
``figures/``.
"""

from __future__ import annotations

from pathlib import Path

from baselines.base_models import DEFAULT_MODEL, get_base_model
from baselines.profiles import model_profiles
from baselines.registry import stage2_alone
from benchmark.reporting import ceilings
from benchmark.reporting.all_methods import OWN_INPUTS_TITLE, all_methods, own_inputs_runs
from benchmark.reporting.base_model_tables import base_model_tables, in_paper_tables
from benchmark.reporting.model_tables import PICK_RULE, figure7, table1, table2, table3
from benchmark.reporting.oracle_tables import oracle_tables
from benchmark.reporting.paired import paired_sections
from benchmark.reporting.protocol_spread import TITLE as SPREAD_TITLE, protocol_spread
from benchmark.reporting.provenance import NOT_RUN, NOT_SCORED
from benchmark.reporting.seam_pictures import model_pictures, oracle_pictures
from benchmark.reporting.stage2_tables import stage2_tables
from benchmark.reporting.vae_tables import vae_tables
from benchmark.runs.records import read_json, write_atomic


def load_runs(runs: Path) -> list[tuple[Path, dict]]:
    """(folder, results) of every run under ``runs`` but a ceiling search's trials (one step per
    stage: they are read through their ``ceiling.json``)."""
    runs = Path(runs)
    return [(path.parent, read_json(path)) for path in sorted(runs.rglob("results.json"))
            if path.relative_to(runs).parts[0] != ceilings.FOLDER]


def load_results(runs: Path) -> list[dict]:
    return [result for _, result in load_runs(runs)]


SEAMS_SEEN = "Seams, seen: tiled outputs beside their no-overlap twins"
SEAMS_SEEN_ORACLE = "Seams, seen: latents with the tile grid"


def profile_report(results: list[dict], profile: str, figures: Path, ceilings: list[dict] = ()) -> str:
    """The body of ``<profile>.md`` from the runs of one model profile (every method's) and its ceiling
    searches: the paper's tables of the default base model's runs (SD 2.1, the paper's), then a table per base
    model, then every run made without a data set."""
    every = results
    results = [r for r in every if in_paper_tables(r)]
    ceilings, every_ceiling = [c for c in ceilings if in_paper_tables(c)], ceilings
    return "\n".join([
        f"Profile `{profile}`: {model_profiles()[profile].description}.", "",
        f"Each table is one group of comparable runs (same data set build, same sizes); where "
        f"several runs fit a cell, the one with the {PICK_RULE} is shown. \"{NOT_RUN}\": no run "
        f"of that method; \"{NOT_SCORED}\": a run without scores (made before scoring, or "
        "unscored); \"skipped\": a metric the run could not compute (reason in the notes). "
        f"Tables 1 to 4, 6, 7, Figure 7 and \"All methods\" hold runs on {get_base_model(DEFAULT_MODEL).title} "
        "(the paper's base model); each base model has its own table after them. "
        "Tables 1 to 4, 6, 7 hold runs on a data set's own items; runs with `--prompt` or `--size` "
        f"are in Figure 7, in the base models' tables and in the last table, \"{OWN_INPUTS_TITLE}\".", "",
        "## Table 1 — full pipeline", "", table1(results, ceilings),
        "## Table 2 — stage I alone", "", table2(results),
        "## Table 3 — ARAD trained on 3 / 5 / 9 ratios", "", table3(results),
        f"## Tables 4, 6, 7 — stage II alone (`{stage2_alone().name}`)", "", stage2_tables(results),
        "## Figure 7 — peak memory", "", figure7(results, profile, figures, ceilings),
        "## All methods, per data set", "", all_methods(results, ceilings) or "No run on a data set.\n",
        "## Base models: each method at 2× and 4× the native side", "", base_model_tables(every, every_ceiling),
        f"## {OWN_INPUTS_TITLE}", "", own_inputs_runs(every) or "No run at prompts or sizes of its own.\n",
        *((f"## {SPREAD_TITLE}", "", spread) if (spread := protocol_spread(every)) else ()),
    ])


def _made_by(runs: Path) -> str:
    return f"Made by `python -m benchmark report` from the runs in `{runs}`.\n\n"


def write_report(runs: Path, out: Path) -> list[Path]:
    """Render every report that the runs under ``runs`` allow; returns the files written."""
    folders = load_runs(runs)
    results = [result for _, result in folders]
    out, figures = Path(out), Path(out) / "figures"
    written = []
    oracle = oracle_tables(results, figures)
    if oracle:
        path = out / "oracle.md"
        pictures = oracle_pictures(folders, figures)
        write_atomic(path, ("# FSTD tiling on the weight-free oracle\n\n" + _made_by(runs) + oracle
                            + (f"\n## {SEAMS_SEEN_ORACLE}\n\n{pictures}" if pictures else "")).encode())
        written.append(path)
    for profile in model_profiles():
        runs_of_profile = [r for r in results if r.get("profile") == profile and "per_image" in r]
        searches = ceilings.load_ceilings(runs, profile)
        vae = vae_tables(results, profile)
        if runs_of_profile or searches or vae:
            path = out / f"{profile}.md"
            write_atomic(path, (f"# Any-size pipelines on the `{profile}` profile\n\n" + _made_by(runs)
                                + profile_report(runs_of_profile, profile, figures, searches)
                                + ("\n" + vae if vae else "")
                                + "\n## Paired differences (A − B, paired bootstrap)\n\n"
                                + (paired_sections([(folder, r) for folder, r in folders
                                                    if id(r) in {id(shown) for shown in runs_of_profile}])
                                   or "No two runs on the same items with intervals to compare.\n")
                                + f"\n## {SEAMS_SEEN}\n\n"
                                + model_pictures([(folder, r) for folder, r in folders
                                                  if id(r) in {id(shown) for shown in runs_of_profile}], figures)
                                ).encode())
            written.append(path)
    return written
