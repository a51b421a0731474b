"""Command line: ``python -m benchmark {run,study,report,baseline,compare,list}``.

Bad input is answered with one line that names the problem and the fix, exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from baselines.tiling import FILLS, OFFSET_MODES, STRATEGIES, WEIGHTINGS, TilingConfig
from benchmark.fstd_oracle import OracleFSTDJob
from benchmark.records import read_json, write_json
from benchmark.regression import SUITES, BaselineError, compare, make_baseline, render
from benchmark.report import load_results, write_report
from benchmark.runner import RunMismatchError, run
from benchmark.study import default_out, run_tag, unique_tilings

METHODS = {"fstd": "stage II alone (FSTD tiled sampling); on the oracle profile it samples "
                   "a Gaussian random field with an analytic denoiser"}
PROFILES = {"oracle": "no weights: Gaussian random field data and its exact (truncated) "
                      "denoiser; measures tiling alone"}
DEFAULT_RUNS = Path("runs")
DEFAULT_REPORTS = Path("reports")


class UsageError(ValueError):
    pass


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"size {text!r} is not of the form HxW, e.g. 2048x2048")
    height, width = int(match.group(1)), int(match.group(2))
    if height < 8 or width < 8:
        raise UsageError(f"size {text!r} is too small: each side must be at least 8 px")
    return height, width


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but torch sees no CUDA device; use --device cpu")
    return device


def _add_sampling_arguments(parser: argparse.ArgumentParser, size_default: str, steps: int,
                            limit: int):
    parser.add_argument("--profile", default="oracle", help="model profile: "
                        + "; ".join(f"{k}: {v}" for k, v in PROFILES.items())
                        + " (default: %(default)s)")
    parser.add_argument("--size", default=size_default, type=str,
                        help="output size HxW in image pixels; the latent is 1/8 per side "
                             "(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=steps,
                        help="sampling steps (default: %(default)s; the paper uses 200)")
    parser.add_argument("--limit", type=int, default=limit,
                        help="number of samples (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Benchmark any-size text-to-image methods (Any-Size-Diffusion and its "
                    "baselines): run, measure, report.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser(
        "run", help="run one method and write per-sample records and results.json",
        description="Run one method. Samples are saved as they finish; running the same "
                    "command again resumes where it stopped.")
    run_parser.add_argument("--method", default="fstd", help="method to run: "
                            + "; ".join(f"{k}: {v}" for k, v in METHODS.items())
                            + " (default: %(default)s)")
    _add_sampling_arguments(run_parser, "2048x2048", 50, 4)
    tiling = run_parser.add_argument_group("tiling (stage II)")
    tiling.add_argument("--tiling", default="implicit", help=f"one of {', '.join(STRATEGIES)} "
                        "(default: %(default)s)")
    tiling.add_argument("--tile", type=int, default=64, help="tile side in latent px (default: 64)")
    tiling.add_argument("--overlap", type=int, default=32,
                        help="explicit: overlap in latent px (default: 32)")
    tiling.add_argument("--weighting", default="gaussian",
                        help=f"tile blending weights: {', '.join(WEIGHTINGS)} (default: gaussian)")
    tiling.add_argument("--offset", default="random",
                        help=f"implicit: {', '.join(OFFSET_MODES)}; fixed is a constant shift "
                             "of range/2 on every shifting step (default: random)")
    tiling.add_argument("--offset-range", type=int, default=32,
                        help="implicit: offsets are uniform in [0, range) latent px (default: 32)")
    tiling.add_argument("--reset-every", type=int, default=4,
                        help="implicit: the offset is (0, 0) every k-th step (default: 4)")
    tiling.add_argument("--fill", default="eps",
                        help=f"implicit: uncovered strip, one of {', '.join(FILLS)}: eps = previous "
                             "step's noise prediction (released code), latent = previous latent "
                             "(paper text) (default: eps)")
    tiling.add_argument("--tile-batch-size", type=int, default=1,
                        help="tiles per denoiser call (default: 1)")
    run_parser.add_argument("--out", type=Path, default=None,
                            help="run directory (default: runs/<profile>/<method>/<tag>)")

    study_parser = commands.add_parser(
        "study", help="run every tiling configuration of Tables 4, 6, 7, then report",
        description="Run the tiling study (Tables 4, 6 and 7) on a profile, then write the "
                    "report. Finished runs are reused.")
    _add_sampling_arguments(study_parser, "2048x2048", 100, 8)
    study_parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS,
                              help="where runs are written (default: %(default)s)")
    study_parser.add_argument("--reports", type=Path, default=DEFAULT_REPORTS,
                              help="where reports are written (default: %(default)s)")

    report_parser = commands.add_parser(
        "report", help="write markdown tables from finished runs",
        description="Render the paper's tables from the runs found under --runs.")
    report_parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS,
                               help="folder searched for results.json (default: %(default)s)")
    report_parser.add_argument("--out", type=Path, default=DEFAULT_REPORTS,
                               help="where the markdown goes (default: %(default)s)")

    baseline_parser = commands.add_parser(
        "baseline", help="run the regression suite of a profile and rewrite its baseline",
        description="Run the profile's regression suite and write its tracked figures as the "
                    "new baseline. Do this on purpose, when a change of outputs is intended.")
    baseline_parser.add_argument("--profile", default="oracle",
                                 help=f"one of {', '.join(SUITES)} (default: %(default)s)")
    baseline_parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS / "suite",
                                 help="where the suite's runs go (default: %(default)s)")
    baseline_parser.add_argument("--out", type=Path, default=None,
                                 help="baseline file (default: reports/baselines/<profile>.json)")

    compare_parser = commands.add_parser(
        "compare", help="run the baseline's suite and check its figures against the baseline",
        description="Run (or resume) the suite recorded in the baseline, print a markdown "
                    "table of every tracked figure against the baseline, and exit with "
                    "status 1 if one moved beyond its tolerance.")
    compare_parser.add_argument("--baseline", type=Path, required=True,
                                help="baseline file, e.g. reports/baselines/oracle.json")
    compare_parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS / "suite",
                                help="where the suite's runs are (default: %(default)s)")
    compare_parser.add_argument("--no-run", action="store_true",
                                help="compare the runs already under --runs; run nothing")

    commands.add_parser("list", help="list methods and profiles")
    return parser


def _job(args, tiling: TilingConfig) -> OracleFSTDJob:
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; known profiles: {', '.join(PROFILES)}")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    return OracleFSTDJob(tiling, size=parse_size(args.size), steps=args.steps, seed=args.seed,
                         device=_device(args.device))


def _check_limit(limit: int):
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")


def command_run(args) -> int:
    if args.method not in METHODS:
        raise UsageError(f"unknown method {args.method!r}; known methods: {', '.join(METHODS)}")
    _check_limit(args.limit)
    tiling = TilingConfig(args.tiling, tile=args.tile, overlap=args.overlap,
                          weighting=args.weighting, offset=args.offset,
                          offset_range=args.offset_range, reset_every=args.reset_every,
                          fill=args.fill, tile_batch_size=args.tile_batch_size)
    job = _job(args, tiling)
    out = args.out or default_out(DEFAULT_RUNS, args.profile, args.method,
                                  run_tag(tiling, job.size, args.steps, args.seed))
    results = run(job, args.limit, out, progress=not args.no_progress)
    print(f"{args.method} on {args.profile}, tiling {tiling.strategy}: "
          f"{results['seconds_per_sample']:.3f} s/sample, "
          f"{results['denoiser_calls_per_sample']:.0f} denoiser calls/sample, "
          f"seam score {results['seam_score']:.3f}, "
          f"distribution error {results['distribution_error']:.4f} -> {out / 'results.json'}")
    return 0


def command_study(args) -> int:
    _check_limit(args.limit)
    for tiling in unique_tilings():
        job = _job(args, tiling)
        out = default_out(args.runs, args.profile, "fstd",
                          run_tag(tiling, job.size, args.steps, args.seed))
        results = run(job, args.limit, out, progress=not args.no_progress)
        print(f"{out.name}: {results['seconds_per_sample']:.3f} s/sample, "
              f"seam {results['seam_score']:.3f}")
    for path in write_report(args.runs, args.reports):
        print(f"wrote {path}")
    return 0


def command_report(args) -> int:
    written = write_report(args.runs, args.out)
    if not written:
        raise UsageError(f"no finished runs under {args.runs}; run `python -m benchmark run` first")
    for path in written:
        print(f"wrote {path}")
    return 0


def _run_suite(suite: list[str], runs: Path):
    status = main(suite + ["--runs", str(runs), "--reports", str(runs / "reports")])
    if status:
        raise UsageError(f"the suite `{' '.join(suite)}` failed with status {status}")


def command_baseline(args) -> int:
    if args.profile not in SUITES:
        raise UsageError(f"no regression suite for profile {args.profile!r}; "
                         f"known: {', '.join(SUITES)}")
    suite = SUITES[args.profile]
    _run_suite(suite, args.runs)
    out = args.out or DEFAULT_REPORTS / "baselines" / f"{args.profile}.json"
    write_json(out, make_baseline(load_results(args.runs), args.profile, suite))
    print(f"wrote {out}")
    return 0


def command_compare(args) -> int:
    if not args.baseline.exists():
        raise UsageError(f"no baseline at {args.baseline}; write one with "
                         "`python -m benchmark baseline --profile <profile>`")
    baseline = read_json(args.baseline)
    if not args.no_run:
        _run_suite(baseline["suite"], args.runs)
    checks = compare(baseline, load_results(args.runs))
    print(render(checks, args.baseline))
    return 0 if all(check.ok for check in checks) else 1


def command_list(args) -> int:
    print("methods:")
    for name, text in METHODS.items():
        print(f"  {name:14s} {text}")
    print("profiles:")
    for name, text in PROFILES.items():
        print(f"  {name:14s} {text}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"run": command_run, "study": command_study, "report": command_report,
                "baseline": command_baseline, "compare": command_compare, "list": command_list}
    try:
        return handlers[args.command](args)
    except (UsageError, ValueError, RunMismatchError, BaselineError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
