"""``study``: the oracle's tiling study (Tables 4, 6, 7), then the report."""

from __future__ import annotations

import argparse

from baselines.profiles import ORACLE_DEFAULTS
from benchmark import api
from benchmark.cli.options import add_device, add_include, add_progress, add_reports, add_runs, size

NAME = "study"
HELP = "run every tiling configuration of Tables 4, 6, 7 on the oracle, then report"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = ("Run the tiling study (Tables 4, 6 and 7) on the weight-free oracle, then write the "
                          "report. Finished runs are reused.")
    parser.add_argument("--profile", default="oracle", help="the oracle only (default: %(default)s)")
    parser.add_argument("--size", type=size, default=ORACLE_DEFAULTS["size"], help="field size HxW (default: 2048x2048)")
    parser.add_argument("--steps", type=int, default=100, help="sampling steps (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=8, help="samples per tiling (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default: %(default)s)")
    add_device(parser)
    add_progress(parser)
    add_runs(parser)
    add_reports(parser)
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    finished, written = api.study(args.profile, args.size, args.steps, args.limit, args.seed, args.device, args.runs,
                                  args.reports, args.progress)
    for run in finished:
        print(f"{run.out.name}: {run.results['seconds_per_sample']:.3f} s/sample, "
              f"seam {run.results['seam_score']:.3f}")
    for path in written:
        print(f"wrote {path}")
    return 0
