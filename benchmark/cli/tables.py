"""``tables``: every run behind the paper's tables on a model profile, then the report."""

from __future__ import annotations

import argparse

from baselines.base_models import base_models
from benchmark import api
from benchmark.cli.options import (add_device, add_include, add_memory_budget, add_model_profile, add_patch_protocol,
                                   add_reports, add_runs)
from benchmark.reporting.paper_runs import FIGURE7_SIDES, TABLE3_BUCKETS
from benchmark.runs.samples import DEFAULT_DATASET

NAME = "tables"
HELP = "make every run behind Tables 1-4, 6, 7, Figure 7 and each base model's table on a model profile, then report"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = (
        "Run what the paper's Tables 1 and 2 (every method with a row there, on a data set), Table 3 (ARAD with "
        "LoRAs trained on 3, 5 and 9 ratios), Tables 4, 6 and 7 (stage II alone with no overlap, explicit and "
        "implicit overlap), Figure 7 (at square sizes) and each base model's table (every method that runs on it at 2x and "
        "4x its native side: SDXL 2048 and 4096 px; on tiny, stand-ins at 1/2x and 1x) need, then write the report. Runs resume and finished "
        "ones are reused. On tiny, Table 3's LoRAs are trained here (seconds each); elsewhere give them with "
        "--lora-3/--lora-5/--lora-9, or Table 3 is not run.")
    add_model_profile(parser)
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="only this base model's runs: its table (sd21's with the paper's tables); known: "
                             + ", ".join(base_models()) + " (default: every model)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="data set name or build folder (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None,
                        help="items per run (default: run's: 3 on tiny, the whole set otherwise)")
    parser.add_argument("--sides", type=int, nargs="+", default=None,
                        help="Figure 7's square sides in px (default: "
                             + "; ".join(f"{p} {' '.join(map(str, s))}" for p, s in FIGURE7_SIDES.items()) + ")")
    for buckets in TABLE3_BUCKETS:
        parser.add_argument(f"--lora-{buckets}", default=None, metavar="DIR",
                            help=f"Table 3: ARAD LoRA trained on {buckets} ratios")
    add_device(parser)
    add_patch_protocol(parser)
    add_memory_budget(parser)
    add_runs(parser)
    add_reports(parser)
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    loras = {k: getattr(args, f"lora_{k}") for k in TABLE3_BUCKETS if getattr(args, f"lora_{k}")}
    for path in api.tables(args.profile, args.dataset, args.limit, tuple(args.sides or ()) or None, loras,
                           args.device, args.patch_protocol, args.memory_budget, args.runs, args.reports,
                           args.include, model=args.model):
        print(f"wrote {path}")
    return 0
