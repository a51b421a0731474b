"""``protocol``: a scored run's evaluation protocol, and whether another run was measured alike."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark import api
from benchmark.cli.options import add_include

NAME = "protocol"
HELP = "print a scored run's evaluation protocol and its hash; --check says whether another run was measured alike"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = (
        "Print the evaluation protocol a run was scored under (reference build, image count and sizes, feature "
        "extractors and their weights' sha256, crop protocol, subset and bootstrap settings) and its short hash. "
        "With --check OTHER_RUN_DIR: 'same' when both runs were measured alike, else the fields that differ "
        "(exit status 1).")
    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="a scored run directory")
    parser.add_argument("--check", type=Path, default=None, metavar="OTHER_RUN_DIR",
                        help="another scored run to compare the protocol with")
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    record, digest, differing = api.protocol(args.run, args.check, args.include)
    if differing is None:
        print(f"protocol {digest}\n{json.dumps(record, indent=2, sort_keys=True)}")
        return 0
    print("same" if not differing else "differ: " + ", ".join(differing))
    return 0 if not differing else 1
