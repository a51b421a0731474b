"""``timing``: our code over references timed beside it, for the regression guard."""

from __future__ import annotations

import argparse

from benchmark import api
from benchmark.cli.options import add_include, add_device, add_model_profile, add_runs
from benchmark.runs.reference_timing import REPEATS, timing_path

NAME = "timing"
HELP = "time our code against references: stage I vs diffusers' pipeline, tiled stage II vs its denoiser calls"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = (
        "Two ratios for the regression guard, each our code over a reference timed beside it in the same process "
        "(fastest of --repeats interleaved runs): our untiled stage I over diffusers' StableDiffusionPipeline on the "
        "same models, seed and steps (the images must agree), and stage II's tiled sampling loop over the time "
        "inside its denoiser calls. Written to RUNS/timing/PROFILE/timing.json.")
    add_model_profile(parser)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="interleaved runs of each (default: %(default)s)")
    add_device(parser)
    add_runs(parser, what="where the timing goes")
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    timing = api.timing(args.profile, args.repeats, args.device, args.runs, args.include)
    for name, ratio in timing["ratios"].items():
        print(f"{name}: {ratio:.3f}")
    print(f"-> {timing_path(args.runs, args.profile)}")
    return 0
