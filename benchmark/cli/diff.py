"""``diff``: two runs on the same items, each score's difference with its paired interval."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmark import api
from benchmark.cli.options import add_include

NAME = "diff"
HELP = "each score of run A minus run B (same items and seeds), with a paired bootstrap interval"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = (
        "Compare two scored runs made on the same items with the same seeds (e.g. asd and ar-tile on one data set): "
        "for every score both have, A minus B and the interval of a paired bootstrap (the images are resampled "
        "together, so what the two runs share cancels), and whether the interval excludes 0.")
    parser.add_argument("run_a", type=Path, metavar="RUN_A", help="run directory")
    parser.add_argument("run_b", type=Path, metavar="RUN_B", help="run directory")
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    rows = api.diff(args.run_a, args.run_b)

    def shown(value) -> str:
        return "–" if value is None else f"{value:.4g}"

    frame = pd.DataFrame([{"score": name, "A": shown(row["a"]), "B": shown(row["b"]),
                           "A − B": shown(row["difference"]),
                           "95% interval": f"[{shown(row['low'])}, {shown(row['high'])}]",
                           "excludes 0": "yes" if row["excludes_zero"] else "no"} for name, row in rows.items()])
    print(f"A: {args.run_a}\nB: {args.run_b}\n")
    print(frame.to_markdown(index=False, disable_numparse=True) if rows else "no score both runs have")
    return 0
