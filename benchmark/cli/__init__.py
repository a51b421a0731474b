"""Command line: ``python -m benchmark VERB`` (or ``asd-bench VERB``), one module per verb.

Each verb parses its options and calls the Python API (:mod:`benchmark.api`,
:mod:`benchmark.guard`); nothing else happens here. Bad input is answered with one line
that names the problem and the fix, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baselines.paper_weights import MissingWeightsError
from benchmark.cli import (baseline, ceiling, compare, diff, list as list_verb, protocol, report, run, score, study,
                           tables, timing, vae_study, weights)
from benchmark.metrics import MissingWeightsError as MissingMetricWeightsError
from benchmark.plugins import load_plugins
from benchmark.regression import BaselineError
from benchmark.runs.runner import RunMismatchError
from benchmark.runs.shard import ShardError
from datasets_build import DatasetError

#: The verbs in the order ``--help`` and ``list`` show them.
VERBS = (run, score, diff, protocol, tables, study, ceiling, report, weights, baseline, compare, vae_study, timing, list_verb)
USER_ERRORS = (ValueError, RunMismatchError, BaselineError, MissingWeightsError, MissingMetricWeightsError,
               DatasetError, ShardError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asd-bench" if Path(sys.argv[0]).name == "asd-bench" else "python -m benchmark",  # as it was typed
        description="Benchmark any-size text-to-image methods (Any-Size-Diffusion, its baselines and your own): "
                    "run, measure, score, report. Every verb is one call of the Python API, benchmark.api "
                    "(README, 'Python API and your own methods').")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        verb.add_arguments(commands.add_parser(verb.NAME, help=verb.HELP))
    return parser


def included(argv: list[str]) -> list[str]:
    """The ``--include`` values of a command line, read before the parser is built so that ``VERB --include
    M --help`` lists M's methods too."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--include", action="append", default=[])
    return early.parse_known_args(argv)[0].include


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [*argv]  # (`list` here is the verb module)
    try:
        load_plugins(included(argv))
        args = build_parser().parse_args(argv)
        verb = next(verb for verb in VERBS if verb.NAME == args.command)
        return verb.command(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
