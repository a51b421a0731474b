"""``ceiling``: the largest square side a method completes under a memory budget."""

from __future__ import annotations

import argparse

from benchmark import api
from benchmark.cli.options import add_device, add_include, add_memory_budget, add_model, add_runs, add_weight_paths
from benchmark.runs import ceiling as ceiling_search
from benchmark.spec import WEIGHT_FIELDS

NAME = "ceiling"
HELP = "find the largest square side a method completes under a memory budget"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = (
        "Find the largest square side (a multiple of 512) that METHOD completes under the memory budget: sides "
        "double from --min-side until a trial runs out of memory, then bisection between the last side that "
        "completed and the first that did not (--max-side caps the search: if it completes, the ceiling is at "
        "least that). Each trial is `python -m benchmark run` in a fresh process, one sample at one step per "
        "stage (memory does not depend on the step count) under --memory-budget; a trial whose process is killed "
        "or dies of a memory error counts as out of memory. A trial that runs past --trial-timeout, or whose "
        "method fails (raises anything but out of memory), stops the search: the ceiling is then at least the "
        "last side that completed, limited by time or stopped by the failure (a bad option is refused, exit 2). Trials and the result go to "
        "RUNS/ceiling/<profile>/[<model>-]<method>-<budget>/ceiling.json as they come; running the same command again "
        "reuses the trials made.")
    parser.add_argument("--method", required=True, help="a registered method (`list` shows them)")
    parser.add_argument("--profile", default=None, help="model profile (default: oracle for the oracle's method, "
                                                        "tiny otherwise)")
    add_model(parser)
    add_memory_budget(parser, "--budget", "--memory-budget", default="32GiB")
    parser.add_argument("--min-side", type=int, default=ceiling_search.MIN_SIDE,
                        help="first side tried, a multiple of 512 (default: %(default)s)")
    parser.add_argument("--max-side", type=int, default=ceiling_search.MAX_SIDE,
                        help="largest side tried, a multiple of 512 (default: %(default)s, ASD's largest output "
                             "in the paper)")
    parser.add_argument("--trial-timeout", type=float, default=None, metavar="SECONDS",
                        help="time limit of one trial (default: 600 on a CPU, where an untiled UNet at 4096² takes "
                             "tens of minutes; none on CUDA; 0: none)")
    add_device(parser)
    add_runs(parser, what="root of the search's folder")
    add_weight_paths(parser)
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    finished = api.ceiling(args.method, args.profile, args.memory_budget, args.min_side, args.max_side, args.device,
                         args.runs, {name: getattr(args, name) for name in WEIGHT_FIELDS}, args.include,
                         trial_timeout=args.trial_timeout, model=args.model)
    print(f"-> {finished.out / 'ceiling.json'}")
    for line in ceiling_search.summary_lines(finished.results):
        print(line)
    return 0
