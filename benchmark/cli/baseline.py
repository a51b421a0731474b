"""``baseline``: run a profile's regression suite and write its tracked figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from baselines.profiles import profiles
from benchmark import guard
from benchmark.cli.options import add_include, add_runs

NAME = "baseline"
HELP = "run the regression suite of a profile and rewrite its baseline"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = ("Run the profile's regression suite (built from the method registry) and write its "
                          "tracked figures as the new baseline. Do this on purpose, when a change of outputs is "
                          "intended.")
    guarded = [name for name, entry in profiles().items() if entry.regression]
    parser.add_argument("--profile", default="oracle", help=f"{' or '.join(guarded)} (default: %(default)s)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help="only these methods' runs (tiny; default: every method in the tiny plan)")
    add_runs(parser, guard.SUITE_RUNS, "where the suite's runs go")
    parser.add_argument("--out", type=Path, default=None,
                        help="baseline file (default: reports/baselines/<profile>.json)")
    parser.add_argument("--why", default=None, help="why the baseline is rewritten (kept in the file, "
                                                    "e.g. \"tiny UNet in SD 2.1's block layout\")")
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    print(f"wrote {guard.baseline(args.profile, args.runs, args.out, args.methods, args.include, args.why)}")
    return 0
