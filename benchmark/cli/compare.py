"""``compare``: run a baseline's suite and check its figures against the baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark import guard
from benchmark.cli.options import add_include, add_runs
from benchmark.regression import render

NAME = "compare"
HELP = "run the baseline's suite and check its figures against the baseline"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = ("Run (or resume) the suite recorded in the baseline, print a markdown table of every "
                          "tracked figure against the baseline, and exit with status 1 if one moved beyond its "
                          "tolerance. Methods of a plugin load from the --include each run recorded.")
    parser.add_argument("--baseline", type=Path, required=True, help="baseline file, e.g. reports/baselines/oracle.json")
    add_runs(parser, guard.SUITE_RUNS, "where the suite's runs are")
    parser.add_argument("--no-run", action="store_true", help="compare the runs already under --runs; run nothing")
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    checks = guard.check(args.baseline, args.runs, run=not args.no_run, include=args.include)
    print(render(checks, args.baseline))
    return 0 if all(check.ok for check in checks) else 1
