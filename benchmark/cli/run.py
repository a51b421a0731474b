"""``run``: one method, measured per sample, resumable, then scored."""

from __future__ import annotations

import argparse

from baselines.registry import methods
from benchmark import api
from benchmark.cli.options import add_run_arguments, escaped, spec_from
from benchmark.cli.summaries import exit_status, run_line, scores_line

NAME = "run"
HELP = "run one method and write per-sample records and results.json"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = ("Run one method. Samples are saved as they finish; running the same command again "
                          "resumes where it stopped and retries samples that failed. Exit status: 0 when every "
                          "sample finished or ran out of memory (a measured result), 3 when the run finished with "
                          "failed samples (the method raised; each record names the error), 2 for bad input.")
    parser.add_argument("--method", default=next(m.name for m in methods().values() if m.oracle),
                        help="method to run: " + escaped("; ".join(f"{m.name}: {m.summary}" for m in methods().values()))
                             + "; `list --include M` shows methods of your own (default: %(default)s)")
    add_run_arguments(parser)


def command(args: argparse.Namespace) -> int:
    finished = api.run(spec_from(args))
    if finished.main:  # every process of a sharded run gets the results; one prints them
        print(run_line(finished.out, finished.results))
        if args.score and "scores" in finished.results:  # the oracle's runs carry their own figures
            print(scores_line(finished.out, finished.results))
    return exit_status(finished.results)
