"""``weights``: every weight file a profile needs, where it is looked for, its sha256."""

from __future__ import annotations

import argparse

from benchmark import api
from benchmark.cli.options import add_model_profile, add_weight_paths, spec_from

NAME = "weights"
HELP = "list every weight file a profile needs, where it is looked for, its sha256"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = ("List the weight files of a profile's models (SD 2.1-base, x4 upscaler, ARAD LoRA, "
                          "StableSR) and metric networks (Inception, AlexNet, CLIP): where each is looked for, its "
                          "sha256 and whether it is there. Nothing is downloaded. Exit status 1 when a needed file "
                          "is missing.")
    add_model_profile(parser, "paper")
    parser.add_argument("--no-hash", action="store_true",
                        help="skip the sha256 of each file (hashing the paper's weights takes a while)")
    add_weight_paths(parser)


def command(args: argparse.Namespace) -> int:
    text, complete = api.weights(args.profile, spec_from(args, method="?").weight_paths(), not args.no_hash)
    print(text)
    return 0 if complete else 1
