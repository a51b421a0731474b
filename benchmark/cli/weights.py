"""``weights``: the weights the methods and scoring need, where each is looked for, whether each method can run."""

from __future__ import annotations

import argparse

from benchmark import api
from benchmark.cli.options import add_include, add_model, add_model_profile, add_weight_paths, spec_from

NAME = "weights"
HELP = "list the weights the methods and scoring need, where they are looked for, and which methods can run"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = ("List the weights of a profile's models (the --model's, SD 2.1-base by default; x4 "
                          "upscaler; ARAD LoRA where the model takes one; StableSR), "
                          "then those scoring needs (Inception, AlexNet, CLIP): where each is looked for, its sha256, "
                          "whether it is there and where to get it; then, per method, whether it can run. Nothing is "
                          "downloaded. Exit status 0 when every chosen method can run with the profile's models, 1 "
                          "when one cannot; missing scoring weights are listed but do not change the exit status "
                          "(runs make their images with --no-score).")
    add_model_profile(parser, "paper")
    add_model(parser)
    parser.add_argument("--method", action="append", default=None, metavar="M",
                        help="a method to check (repeatable; default: every registered method that runs on --model)")
    parser.add_argument("--no-hash", action="store_true",
                        help="skip the sha256 of each file (hashing the paper's weights takes a while)")
    add_weight_paths(parser)
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    text, runnable = api.weights(args.profile, spec_from(args, method="?").weight_paths(), not args.no_hash,
                                 methods=tuple(args.method or ()), include=args.include, model=args.model)
    print(text)
    return 0 if runnable else 1
