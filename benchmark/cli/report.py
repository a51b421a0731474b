"""``report``: markdown tables from finished runs."""

from __future__ import annotations

import argparse

from benchmark import api
from benchmark.cli.options import add_include, add_reports, add_runs
from benchmark.errors import UsageError

NAME = "report"
HELP = "write markdown tables from finished runs"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = "Render the paper's tables, and one of all methods per data set, from the runs under --runs."
    add_runs(parser, what="folder searched for results.json")
    add_reports(parser, "--out")
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    written = api.report(args.runs, args.out, args.include)
    if not written:
        raise UsageError(f"no finished runs under {args.runs}; run `python -m benchmark run` first")
    for path in written:
        print(f"wrote {path}")
    return 0
