"""``score``: (re-)score finished model runs from their saved images."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark import api
from benchmark.cli.options import (add_bootstrap, add_device, add_include, add_opt_in_metrics, add_patch_protocol,
                                   add_protocols)
from benchmark.cli.summaries import scores_line

NAME = "score"
HELP = "(re-)score finished model runs and rewrite their results.json"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = ("Compute every registered metric (the opt-in ones where --metrics names them) of finished "
                          "model runs from their saved images and write the scores into each results.json. Metric networks follow the run's profile: "
                          "paper needs real weights, tiny and paper-arch use random ones.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directory")
    add_device(parser)
    add_patch_protocol(parser)
    add_bootstrap(parser)
    add_protocols(parser)
    add_opt_in_metrics(parser)
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    for finished in api.score(args.runs, args.device, args.patch_protocol, args.include, args.bootstrap,
                              args.protocols, args.metrics):
        if finished.main:
            print(scores_line(finished.out, finished.results))
    return 0
