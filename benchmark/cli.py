"""Command line: ``python -m benchmark {run,score,tables,study,ceiling,report,weights,baseline,compare,list}``.

Bad input is answered with one line that names the problem and the fix, exit status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path
from typing import Optional

import torch

from baselines.fast_path import ATTENTIONS, CPU_DEFAULTS, CUDA_DEFAULTS, DTYPES, FastPath
from baselines.methods import (BACKBONES, DEFAULT_STEPS, METHODS as MODEL_METHODS, MIN_SIDE, Settings, get_method,
                               load_pipeline)
from baselines.stablesr.backbone import DEFAULT_CFW_WEIGHT
from baselines.models import (PATH_VARIABLES, PROFILES as MODEL_PROFILES, MissingWeightsError, WeightPaths,
                              asd_cache_dir, load_text_to_image)
from baselines.stage1 import DEFAULT_GUIDANCE
from baselines.stage2 import COLOUR_FIXES
from baselines.tiling import FILLS, OFFSET_MODES, STRATEGIES, WEIGHTINGS, TilingConfig
from baselines.vae_tiling import VAE_TILING_MODES, VaeTiling
from benchmark.oracle.job import OracleFSTDJob
from benchmark.metrics import MissingWeightsError as MissingMetricWeightsError
from benchmark.runs import ceiling as ceiling_search
from benchmark.runs.measure import MemoryBudget, check_budget
from benchmark.runs.model_job import ModelJob
from benchmark.runs.records import read_json, write_json
from benchmark.regression import SUITES, BaselineError, compare, make_baseline, render
from benchmark.reporting.report import load_results, write_report
from benchmark.reporting.vae_tables import render_vae_study
from benchmark.runs.vae_study import vae_study
from benchmark.runs.reference_timing import timing_path, write_reference_timing
from benchmark.runs.runner import RunMismatchError, run
from benchmark.runs.samples import DEFAULT_DATASET, plan_samples
from benchmark.runs.shard import ShardError, current as current_shard
from benchmark.metrics.patches import DEFAULT_PROTOCOL as DEFAULT_PATCH_PROTOCOL, PatchProtocol
from benchmark.metrics.scoring import METRICS as SCORED_METRICS, check_weights, score_run
from benchmark.reporting.paper_runs import FIGURE7_SIDES, TABLE3_BUCKETS, commands as paper_run_commands
from benchmark.oracle.study import default_out, run_tag, tiling_tag, unique_tilings
from datasets_build import DatasetError
from benchmark.metrics.weights_listing import listing

METHODS = {name: method.summary for name, method in MODEL_METHODS.items()}
METHODS["fstd"] += "; on the oracle profile it samples a Gaussian random field with an analytic denoiser"
PROFILES = {"oracle": "no weights: Gaussian random field data and its exact (truncated) "
                      "denoiser; measures tiling alone (--method fstd only, its default profile)",
            **MODEL_PROFILES}
PROFILES["tiny"] += " (the default for every method but fstd)"
ORACLE = {"size": "2048x2048", "steps": 50, "limit": 4, "tile": 64, "overlap": 32, "offset_range": 32}
TINY_LIMIT = 3  # a wide, a square-ish and a tall item: a bare `run --method asd` takes seconds
DEFAULT_RUNS = Path("runs")
COMMITTED_REPORTS = Path("reports")  # the reference reports: written only when asked for by name
SUITE_RUNS = Path("runs-suite")  # apart from runs/, so that suites never enter the reports


class UsageError(ValueError):
    pass


def parse_size(text: str, minimum: int = 8) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"size {text!r} is not of the form HxW, e.g. 2048x2048")
    height, width = int(match.group(1)), int(match.group(2))
    if height < minimum or width < minimum:
        raise UsageError(f"size {text!r} is too small: each side must be at least {minimum} px")
    return height, width


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but torch sees no CUDA device; use --device cpu")
    return device


def _add_sampling_arguments(parser: argparse.ArgumentParser, defaults: Optional[dict] = None,
                            shown: Optional[dict] = None):
    """The options ``run`` and ``study`` share. ``run``'s defaults depend on the method and
    profile, so it passes none and ``shown`` says them in --help; they are filled in by
    :func:`_run_oracle` and :func:`_run_model`."""
    defaults = defaults or {}
    shown = shown or dict.fromkeys(("profile", "size", "steps", "limit"), "%(default)s")
    parser.add_argument("--profile", default=defaults.get("profile"),
                        help="model profile: " + "; ".join(f"{k}: {v}" for k, v in PROFILES.items())
                        + f" (default: {shown['profile']})")
    parser.add_argument("--size", default=defaults.get("size"), type=str,
                        help=f"output size HxW in image pixels (default: {shown['size']})")
    parser.add_argument("--steps", type=int, default=defaults.get("steps"),
                        help=f"sampling steps (default: {shown['steps']})")
    parser.add_argument("--limit", type=int, default=defaults.get("limit"),
                        help=f"number of samples (default: {shown['limit']})")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (default: only when stderr is a terminal, so logs stay clean)")


def _add_model_arguments(parser: argparse.ArgumentParser):
    models = parser.add_argument_group("model profiles (tiny, paper-arch, paper)")
    models.add_argument("--dataset", default=DEFAULT_DATASET,
                        help="data set name or built folder whose items (caption, size, reference "
                             "image; LR input for fstd) are the samples, spread over sizes so that "
                             "--limit N takes N shapes (default: %(default)s, built on first use in "
                             "$ASD_BENCH_CACHE/datasets, else ~/.cache/asd-bench/datasets)")
    models.add_argument("--prompt", default=None,
                        help="one prompt for every sample, replacing the items' captions; with --size "
                             "too, one sample and no data set (default: the items' captions)")
    models.add_argument("--no-score", action="store_true",
                        help="skip scoring (FID, KID, patch FID/KID, IS, CLIP score, PSNR/SSIM/LPIPS, seam "
                             "score) after the run; `python -m benchmark score RUN_DIR` does it later")
    _add_patch_protocol_argument(models)
    models.add_argument("--sr-steps", type=int, default=None,
                        help="stage II DDPM steps (default: "
                             + ", ".join(f"{p} {s[1]}" for p, s in DEFAULT_STEPS.items()) + ")")
    models.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                        help="stage I classifier-free guidance scale (default: %(default)s, "
                             "diffusers'; the authors' UI uses 7.0)")
    models.add_argument("--colour-fix", default="adain",
                        help=f"stage II colour fix: {', '.join(COLOUR_FIXES)} (default: %(default)s)")
    models.add_argument("--vae-tiling", default="auto", choices=VAE_TILING_MODES,
                        help="how every VAE encode and decode is tiled: sync (tiles with a halo, "
                             "GroupNorm statistics shared over the image: memory flat in the size), "
                             "diffusers (AutoencoderKL.enable_tiling), off (one call), auto (sync "
                             "where the latent is larger than one tile; default: %(default)s)")
    _add_weight_path_arguments(models)
    models.add_argument("--backbone", default=None, choices=tuple(BACKBONES),
                        help="stage II's SR model: " + "; ".join(f"{k}: {v}" for k, v in BACKBONES.items())
                             + " (default: stablesr on paper when both its files are found, the paper's; "
                               "x4 otherwise)")
    models.add_argument("--cfw-weight", type=float, default=DEFAULT_CFW_WEIGHT, metavar="W",
                        help="StableSR's CFW weight w: decoder features + w * fusion (0: the plain SD "
                             "decoder; default: %(default)s, the authors')")
    fast = parser.add_argument_group(
        "fast path (unset: the device's default; CPU: fp32, sdpa, no channels-last, no compile, outputs "
        "unchanged; CUDA: " + ", ".join(f"{k} {v}" for k, v in CUDA_DEFAULTS.items() if k != "tile_batch_size")
        + ", estimates from FLOP and memory counts until measured, see README)")
    fast.add_argument("--dtype", default=None, choices=tuple(DTYPES), help="the networks' dtype (latents stay fp32; "
                      "the x4 VAE runs in fp32 where its config says force_upcast)")
    fast.add_argument("--attention", default=None, choices=ATTENTIONS,
                      help="sdpa: diffusers' AttnProcessor2_0 (torch's fused attention), classic: AttnProcessor "
                           "(scores written out, memory quadratic in the tokens)")
    fast.add_argument("--channels-last", default=None, action=argparse.BooleanOptionalAction,
                      help="the UNets' weights in channels-last memory format")
    fast.add_argument("--compile", default=None, action=argparse.BooleanOptionalAction,
                      help="torch.compile the UNets (one graph per shape); compiled in the warm-up at every "
                           "sample size, whose seconds results.json records apart from s/image")


def _fast_path(args) -> FastPath:
    return FastPath(args.dtype, args.attention, args.channels_last, args.compile)


def _patch_protocol(text: str) -> str:
    try:
        return PatchProtocol.parse(text).label
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_patch_protocol_argument(parser):
    parser.add_argument("--patch-protocol", type=_patch_protocol, default=DEFAULT_PATCH_PROTOCOL,
                        metavar="grid|random:K[:SEED]",
                        help="crops of fid_patch / kid_patch at native resolution, 299 px: grid (non-overlapping, "
                             "plus a pass shifted by half a crop) or K seeded random crops per image "
                             "(default: %(default)s)")


def _add_runs_and_reports(parser: argparse.ArgumentParser):
    """The folders of the verbs that run and then report (``study``, ``tables``)."""
    parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS,
                        help="where runs are written (default: %(default)s)")
    parser.add_argument("--reports", type=Path, default=None,
                        help="where reports are written (default: RUNS/reports; the committed reference "
                             "reports are rewritten only by an explicit --reports reports)")


def _add_weight_path_arguments(parser):
    parser.add_argument("--sd21", default=None, help="paper: SD 2.1-base folder (default: "
                        f"${PATH_VARIABLES['sd21']}, else the Hugging Face cache)")
    parser.add_argument("--upscaler", default=None, help="paper: SD x4 upscaler folder (default: "
                        f"${PATH_VARIABLES['upscaler']}, else the Hugging Face cache)")
    parser.add_argument("--lora", default=None, help="ARAD LoRA folder (default: "
                        f"${PATH_VARIABLES['lora']}; tiny trains and caches its own, paper-arch "
                        "uses an untrained one, paper needs one)")
    parser.add_argument("--stablesr-ckpt", default=None, metavar="PATH",
                        help="paper, --backbone stablesr: stablesr_000117.ckpt (or .safetensors; default: "
                             f"${PATH_VARIABLES['stablesr']})")
    parser.add_argument("--stablesr-vae", default=None, metavar="PATH",
                        help="paper, --backbone stablesr: vqgan_cfw_00011.ckpt, the CFW VAE (default: "
                             f"${PATH_VARIABLES['stablesr_vae']})")


def _weight_paths(args) -> WeightPaths:
    return WeightPaths.from_environment(sd21=args.sd21, upscaler=args.upscaler, lora=args.lora,
                                        stablesr=args.stablesr_ckpt, stablesr_vae=args.stablesr_vae)


def _add_memory_budget_argument(parser, *names: str, default: Optional[str] = None):
    parser.add_argument(*(names or ("--memory-budget",)), dest="memory_budget", default=default, metavar="SIZE",
                        help="hold each sample to this much memory, e.g. 32GiB (the paper's card), "
                             "512MiB, 32GB; a sample over it is recorded as out of memory and the run "
                             "goes on. CUDA: set_per_process_memory_fraction(budget / device total); "
                             "CPU: the soft RLIMIT_AS during each sample, so that the process cannot "
                             "map more than the budget minus what it holds at sample start"
                             + (" (default: %(default)s)" if default else " (default: none)"))


def _memory_budget(text: Optional[str]) -> Optional[MemoryBudget]:
    return None if text is None else MemoryBudget.parse(text)


def _budget_tag(budget: Optional[MemoryBudget]) -> str:
    """The run directory's suffix: none without a budget, so older run names stay as they were."""
    return "" if budget is None else f"-mem{budget.text}"


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
    _add_sampling_arguments(run_parser, shown=dict(
        profile="oracle for fstd, tiny otherwise",
        size=f"{ORACLE['size']} on oracle, the data set items' sizes otherwise",
        steps=f"{ORACLE['steps']} on oracle; stage I DDIM steps otherwise: "
              + ", ".join(f"{p} {s[0]}" for p, s in DEFAULT_STEPS.items())
              + "; fstd on models has only stage II, see --sr-steps",
        limit=f"{ORACLE['limit']} on oracle, {TINY_LIMIT} on tiny (256x1024, 768x1024, 1024x256 of "
              "synthetic), the whole data set otherwise"))
    _add_model_arguments(run_parser)
    tiling = run_parser.add_argument_group(
        "tiling (stage II; on model profiles sizes are in the SR backbone's latent px and default "
        "to the paper's 512 px tiles, 256 px offset range and overlap)")
    tiling.add_argument("--tiling", default=None,
                        help=f"one of {', '.join(STRATEGIES)}; fstd only, the other methods fix "
                             "theirs (default: implicit)")
    tiling.add_argument("--tile", type=int, default=None,
                        help=f"tile side in latent px (default: {ORACLE['tile']} on oracle)")
    tiling.add_argument("--overlap", type=int, default=None,
                        help=f"explicit: overlap in latent px (default: {ORACLE['overlap']} on oracle)")
    tiling.add_argument("--weighting", default="gaussian",
                        help=f"tile blending weights: {', '.join(WEIGHTINGS)} (default: gaussian)")
    tiling.add_argument("--offset", default="random",
                        help=f"implicit: {', '.join(OFFSET_MODES)}; fixed is a constant shift "
                             "of range/2 on every shifting step (default: random)")
    tiling.add_argument("--offset-range", type=int, default=None,
                        help="implicit: offsets are uniform in [0, range) latent px "
                             f"(default: {ORACLE['offset_range']} on oracle)")
    tiling.add_argument("--reset-every", type=int, default=4,
                        help="implicit: the offset is (0, 0) every k-th step (default: 4)")
    tiling.add_argument("--fill", default="eps",
                        help=f"implicit: uncovered strip, one of {', '.join(FILLS)}: eps = previous "
                             "step's noise prediction (released code), latent = previous latent "
                             "(paper text) (default: eps)")
    tiling.add_argument("--tile-batch-size", type=int, default=None,
                        help="tiles per denoiser call; for md, views per call (default: "
                             f"{CPU_DEFAULTS['tile_batch_size']} on CPU and the oracle, "
                             f"{CUDA_DEFAULTS['tile_batch_size']} on CUDA)")
    run_parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS,
                            help="root of the default run directory (default: %(default)s)")
    run_parser.add_argument("--out", type=Path, default=None,
                            help="run directory (default: RUNS/<profile>/<method>/<tag>)")
    _add_memory_budget_argument(run_parser)

    score_parser = commands.add_parser(
        "score", help="(re-)score finished model runs and rewrite their results.json",
        description="Compute the scores of finished model runs from their saved images (FID, IS, "
                    "CLIP score; PSNR/SSIM/LPIPS for fstd; seam score with a stage II) and write "
                    "them into each results.json. Metric networks follow the run's profile: paper "
                    "needs real weights, tiny and paper-arch use random ones.")
    score_parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directory")
    score_parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    _add_patch_protocol_argument(score_parser)

    tables_parser = commands.add_parser(
        "tables", help="make every run behind Tables 1-4, 6, 7 and Figure 7 on a model profile, then report",
        description="Run what the paper's Tables 1 and 2 (every method on a data set), Table 3 "
                    "(ar-plus with LoRAs trained on 3, 5 and 9 ratios), Tables 4, 6 and 7 (fstd on the "
                    "data set with no overlap, explicit and implicit overlap) and Figure 7 (sr-plus and "
                    "asd at square sizes) need, then write the report. Runs resume and finished "
                    "ones are reused. On tiny, Table 3's LoRAs are trained here (seconds each); "
                    "elsewhere give them with --lora-3/--lora-5/--lora-9, or Table 3 is not run.")
    tables_parser.add_argument("--profile", default="tiny", help=f"one of {', '.join(MODEL_PROFILES)} "
                               "(default: %(default)s)")
    tables_parser.add_argument("--dataset", default=DEFAULT_DATASET,
                               help="data set name or build folder (default: %(default)s)")
    tables_parser.add_argument("--limit", type=int, default=None,
                               help="items per run (default: run's: 3 on tiny, the whole set otherwise)")
    tables_parser.add_argument("--sides", type=int, nargs="+", default=None,
                               help="Figure 7's square sides in px (default: "
                                    + "; ".join(f"{p} {' '.join(map(str, s))}" for p, s in FIGURE7_SIDES.items()) + ")")
    for buckets in TABLE3_BUCKETS:
        tables_parser.add_argument(f"--lora-{buckets}", default=None, metavar="DIR",
                                   help=f"Table 3: ARAD LoRA trained on {buckets} ratios")
    tables_parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    _add_patch_protocol_argument(tables_parser)
    _add_memory_budget_argument(tables_parser)
    _add_runs_and_reports(tables_parser)

    ceiling_parser = commands.add_parser(
        "ceiling", help="find the largest square side a method completes under a memory budget",
        description="Find the largest square side (a multiple of 512) that METHOD completes under "
                    "the memory budget: sides double from --min-side until a trial runs out of "
                    "memory, then bisection between the last side that completed and the first "
                    "that did not (--max-side caps the search: if it completes, the ceiling is "
                    "at least that). Each trial is `python -m benchmark run` in a fresh process, "
                    "one sample at one step per stage (memory does not depend on the step count) "
                    "under --memory-budget; a trial whose process crashes or is killed counts as "
                    "out of memory. Trials and the result go to "
                    "RUNS/ceiling/<profile>/<method>-<budget>/ceiling.json as they come; running "
                    "the same command again reuses the trials made.")
    ceiling_parser.add_argument("--method", required=True, help=f"one of {', '.join(METHODS)}")
    ceiling_parser.add_argument("--profile", default=None,
                                help="model profile (default: oracle for fstd, tiny otherwise)")
    _add_memory_budget_argument(ceiling_parser, "--budget", "--memory-budget", default="32GiB")
    ceiling_parser.add_argument("--min-side", type=int, default=ceiling_search.MIN_SIDE,
                                help="first side tried, a multiple of 512 (default: %(default)s)")
    ceiling_parser.add_argument("--max-side", type=int, default=ceiling_search.MAX_SIDE,
                                help="largest side tried, a multiple of 512 (default: %(default)s, "
                                     "ASD's largest output in the paper)")
    ceiling_parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    ceiling_parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS,
                                help="root of the search's folder (default: %(default)s)")
    _add_weight_path_arguments(ceiling_parser)

    vae_parser = commands.add_parser(
        "vae-study", help="every --vae-tiling mode against the untiled VAE: PSNR, seams, time, memory",
        description="Encode and decode one synthetic image of --size with the profile's x4 upscaler "
                    "VAE (stage II's) untiled and in every tiling mode; record PSNR against the "
                    "untiled output (decode alone and round trip), the seam score on the VAE's tile "
                    "grid, seconds and peak memory, in RUNS/vae-tiling/<profile>-<size>-t<tile>-h<halo>/"
                    "results.json, then print the table. `report` puts it in the profile's report.")
    vae_parser.add_argument("--profile", default="tiny", help=f"one of {', '.join(MODEL_PROFILES)} (default: %(default)s)")
    vae_parser.add_argument("--size", default="2048x2048", help="HxW in px (default: %(default)s)")
    vae_parser.add_argument("--vae-tile", type=int, default=VaeTiling.tile, help="tile side in latent px (default: %(default)s)")
    vae_parser.add_argument("--vae-halo", type=int, default=VaeTiling.halo, help="halo in latent px (default: %(default)s)")
    vae_parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    vae_parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="where the study goes (default: %(default)s)")

    timing_parser = commands.add_parser(
        "timing", help="time our code against references: stage I vs diffusers' pipeline, tiled stage II vs its denoiser calls",
        description="Two ratios for the regression guard, each our code over a reference timed beside "
                    "it in the same process (fastest of --repeats interleaved runs): our untiled stage I "
                    "over diffusers' StableDiffusionPipeline on the same models, seed and steps (the "
                    "images must agree), and stage II's tiled sampling loop over the time inside its "
                    "denoiser calls. Written to RUNS/timing/PROFILE/timing.json.")
    timing_parser.add_argument("--profile", default="tiny", help=f"one of {', '.join(MODEL_PROFILES)} (default: %(default)s)")
    timing_parser.add_argument("--repeats", type=int, default=5, help="interleaved runs of each (default: %(default)s)")
    timing_parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    timing_parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="where the timing goes (default: %(default)s)")

    study_parser = commands.add_parser(
        "study", help="run every tiling configuration of Tables 4, 6, 7, then report",
        description="Run the tiling study (Tables 4, 6 and 7) on a profile, then write the "
                    "report. Finished runs are reused.")
    _add_sampling_arguments(study_parser, defaults=dict(ORACLE, profile="oracle", steps=100, limit=8))
    _add_runs_and_reports(study_parser)

    report_parser = commands.add_parser(
        "report", help="write markdown tables from finished runs",
        description="Render the paper's tables from the runs found under --runs.")
    report_parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS,
                               help="folder searched for results.json (default: %(default)s)")
    report_parser.add_argument("--out", type=Path, default=None,
                               help="where the markdown goes (default: RUNS/reports; the committed "
                                    "reference reports are rewritten only by an explicit --out reports)")

    baseline_parser = commands.add_parser(
        "baseline", help="run the regression suite of a profile and rewrite its baseline",
        description="Run the profile's regression suite and write its tracked figures as the "
                    "new baseline. Do this on purpose, when a change of outputs is intended.")
    baseline_parser.add_argument("--profile", default="oracle",
                                 help=f"one of {', '.join(SUITES)} (default: %(default)s)")
    baseline_parser.add_argument("--runs", type=Path, default=SUITE_RUNS,
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
    compare_parser.add_argument("--runs", type=Path, default=SUITE_RUNS,
                                help="where the suite's runs are (default: %(default)s)")
    compare_parser.add_argument("--no-run", action="store_true",
                                help="compare the runs already under --runs; run nothing")

    weights_parser = commands.add_parser(
        "weights", help="list every weight file a profile needs, where it is looked for, its sha256",
        description="List the weight files of a profile's models (SD 2.1-base, x4 upscaler, ARAD "
                    "LoRA) and metric networks (Inception, AlexNet, CLIP): where each is looked for, "
                    "its sha256 and whether it is there. Nothing is downloaded. Exit status 1 when a "
                    "needed file is missing.")
    weights_parser.add_argument("--profile", default="paper",
                                help=f"one of {', '.join(MODEL_PROFILES)} (default: %(default)s)")
    weights_parser.add_argument("--no-hash", action="store_true",
                                help="skip the sha256 of each file (hashing the paper's weights takes a while)")
    _add_weight_path_arguments(weights_parser)

    commands.add_parser("list", help="list methods and profiles")
    return parser


def _oracle_job(args, tiling: TilingConfig) -> OracleFSTDJob:
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; known profiles: {', '.join(PROFILES)}")
    if args.profile != "oracle":
        raise UsageError(f"the tiling study runs on the oracle profile only, not {args.profile!r}; "
                         "run model profiles one method at a time with `python -m benchmark run`")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    return OracleFSTDJob(tiling, size=parse_size(args.size), steps=args.steps, seed=args.seed,
                         device=_device(args.device))


def _check_limit(limit: int):
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")


def _resolve_profile(args):
    """fstd runs on the oracle unless told otherwise; every other method on tiny."""
    if args.method not in METHODS:
        raise UsageError(f"unknown method {args.method!r}; known methods: {', '.join(METHODS)}")
    if args.profile is None:
        args.profile = "oracle" if args.method == "fstd" else "tiny"
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; known profiles: {', '.join(PROFILES)}")
    if args.profile == "oracle" and args.method != "fstd":
        raise UsageError(f"the oracle profile has no models and runs --method fstd only; run "
                         f"{args.method} on one of {', '.join(MODEL_PROFILES)}")


def command_run(args) -> int:
    _resolve_profile(args)
    args.budget = _memory_budget(args.memory_budget)  # bad input is refused before anything is built
    if args.profile == "oracle":
        return _run_oracle(args)
    return _run_model(args)


def _run_oracle(args) -> int:
    if args.backbone is not None:
        raise UsageError("the oracle has no SR model; --backbone needs a model profile (--profile tiny, "
                         f"{', '.join(p for p in MODEL_PROFILES if p != 'tiny')})")
    for key, value in ORACLE.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    _check_limit(args.limit)
    tiling = TilingConfig(args.tiling or "implicit", tile=args.tile, overlap=args.overlap,
                          weighting=args.weighting, offset=args.offset,
                          offset_range=args.offset_range, reset_every=args.reset_every,
                          fill=args.fill, tile_batch_size=(CPU_DEFAULTS["tile_batch_size"] if args.tile_batch_size is None
                                                           else args.tile_batch_size))
    budget = args.budget
    job = _oracle_job(args, tiling)
    out = args.out or default_out(args.runs, args.profile, args.method,
                                  run_tag(tiling, job.size, args.steps, args.seed) + _budget_tag(budget))
    results = run(job, args.limit, out, progress=args.progress, budget=budget)
    figures = [] if results["finished_samples"] == 0 else [
        f"{results['seconds_per_sample']:.3f} s/sample",
        f"{results['denoiser_calls_per_sample']:.0f} denoiser calls/sample",
        f"seam score {results['seam_score']:.3f}",
        f"distribution error {results['distribution_error']:.4f}"]
    print(f"{args.method} on {args.profile}, tiling {tiling.strategy}: "
          f"{', '.join(figures + _oom_summary(results))} -> {out / 'results.json'}")
    return 0


def _oom_summary(results: dict) -> list[str]:
    """"k of n samples out of memory (under B)" where any did."""
    if not results["oom_samples"]:
        return []
    budget = results.get("memory_budget")
    return [f"{results['oom_samples']} of {results['samples']} samples out of memory"
            + (f" under {budget['text']}" if budget else "")
            + f" (peak {results['oom_peak_memory_mib']:.0f} MiB when it failed)"]


def _run_model(args) -> int:
    method = get_method(args.method)
    if args.tiling is not None and method.stage2 != "any":
        raise UsageError(f"--tiling chooses fstd's stage II; {method.name} fixes its own "
                         f"({method.stage2 or 'it has no stage II'})")
    if method.base is None and args.prompt is not None:
        raise UsageError("fstd has no text input (stage II runs on the empty prompt); drop --prompt")
    size = parse_size(args.size, MIN_SIDE) if args.size else None
    shard = current_shard(_device(args.device))  # under accelerate launch: this process's share of the run
    with shard.main_first():  # rank 0 builds a missing synthetic set, the others then read it
        plan = plan_samples(args.dataset, asd_cache_dir() / "datasets", args.prompt, size)
    if args.limit is None:
        limit = min(TINY_LIMIT, len(plan.samples)) if args.profile == "tiny" else len(plan.samples)
    else:
        limit = args.limit
    _check_limit(limit)
    if plan.dataset is not None and limit > len(plan.samples):
        raise UsageError(f"--limit {limit} is more than the {len(plan.samples)} items of data set "
                         f"{plan.dataset.name!r}; use --limit {len(plan.samples)} or a larger set")
    default_steps, default_sr_steps = DEFAULT_STEPS[args.profile]
    steps = default_steps if args.steps is None else args.steps
    sr_steps = default_sr_steps if args.sr_steps is None else args.sr_steps
    if method.base is None and args.sr_steps is None and args.steps is not None:
        sr_steps = args.steps  # fstd has only stage II: --steps means its steps
    tiling = dict(tile=args.tile, overlap=args.overlap, weighting=args.weighting, offset=args.offset,
                  offset_range=args.offset_range, reset_every=args.reset_every, fill=args.fill,
                  tile_batch_size=args.tile_batch_size)
    if args.backbone is not None and method.stage2 is None:
        raise UsageError(f"--backbone chooses stage II's model; {method.name} has no stage II")
    settings = Settings(steps, sr_steps, args.guidance, args.colour_fix, args.tiling or "implicit", tiling,
                        VaeTiling(args.vae_tiling), fast_path=_fast_path(args), backbone=args.backbone,
                        cfw_weight=args.cfw_weight)
    device = shard.device(_device(args.device))
    budget = args.budget
    check_budget(budget, device)  # before the models are loaded
    paths = _weight_paths(args)
    with shard.main_first():  # rank 0 trains a missing tiny LoRA as one process does, the others load it
        pipeline = load_pipeline(method, args.profile, settings, device, paths)
    if not args.no_score:
        check_weights(args.profile)  # before any image is made
    job = ModelJob(pipeline, plan, args.seed, device)
    out = args.out or default_out(args.runs, args.profile, method.name,
                                  model_run_tag(pipeline, plan.dataset, args.prompt, size, args.seed)
                                  + _budget_tag(budget))
    results = run(job, limit, out, progress=args.progress, budget=budget, shard=shard)
    if shard.main:
        figures = [] if results["finished_samples"] == 0 else [
            f"{results['seconds_per_image']:.2f} s/image",
            f"stage I {results['stage1_unet_calls_per_image']:.0f} UNet calls/image",
            f"stage II {results['stage2_denoiser_calls_per_image']:.0f} calls/image",
            f"peak memory {results['peak_memory_mib']:.0f} MiB"]
        print(f"{method.name} on {args.profile}: {', '.join(figures + _oom_summary(results))} "
              f"-> {out / 'results.json'}")
    if not args.no_score:
        scored = score_run(out, device, args.patch_protocol, shard)
        if shard.main:
            _print_scores(out, scored)
    return 0


def _print_scores(out: Path, results: dict):
    scores = results["scores"]
    shown = ", ".join(f"{name} {scores[name]:.4g}" for name in SCORED_METRICS if scores[name] is not None)
    print(f"scores ({results['metrics_profile']}): {shown or 'none'} -> {out / 'results.json'}")


def command_score(args) -> int:
    shard = current_shard(_device(args.device))
    device = shard.device(_device(args.device))
    for out in args.runs:
        results = score_run(out, device, args.patch_protocol, shard)
        if shard.main:
            _print_scores(out, results)
    return 0


def model_run_tag(pipeline, dataset, prompt: Optional[str], size: Optional[tuple[int, int]],
                  seed: int) -> str:
    """A directory name that says what a model run was: samples, steps, tiling, seed."""
    settings, method = pipeline.settings, pipeline.method
    parts = [] if dataset is None else [f"{dataset.name}-{dataset.manifest_hash[:8]}"]
    if size is not None:
        parts.append(f"{size[0]}x{size[1]}")
    if prompt is not None:
        parts.append("p" + hashlib.sha256(prompt.encode()).hexdigest()[:8])
    if method.base:
        parts += [f"s{settings.steps}", f"g{settings.guidance:g}"]
    if pipeline.sr_tiling:
        parts += [f"sr{settings.sr_steps}", tiling_tag(pipeline.sr_tiling), settings.colour]
        parts += _backbone_tag(pipeline)
    if settings.vae_tiling.mode != "auto":
        parts.append(f"vae-{settings.vae_tiling.mode}")
    parts += _fast_path_tag(pipeline)
    return "-".join(parts + [f"seed{seed}"])


def _backbone_tag(pipeline) -> list[str]:
    """StableSR's runs apart from the x4 upscaler's (whose names stay as they were), with a CFW w other than 0.5."""
    if pipeline.backbone.name != BACKBONES["stablesr"]:
        return []
    weight = pipeline.settings.cfw_weight
    return ["stablesr"] + ([f"w{weight:g}"] if weight != DEFAULT_CFW_WEIGHT else [])


def _fast_path_tag(pipeline) -> list[str]:
    """The fast-path settings that were given, and a tile batch other than one: default runs keep their names."""
    fast, batch = pipeline.fast_path, pipeline.settings.tiling["tile_batch_size"]
    words = {"dtype": fast["dtype"], "attention": f"attn-{fast['attention']}",
             "channels_last": "cl" if fast["channels_last"] else "no-cl",
             "compile": "compiled" if fast["compile"] else "eager"}
    return [words[key] for key in fast["given"]] + ([f"tb{batch}"] if batch != 1 else [])


def command_study(args) -> int:
    _check_limit(args.limit)
    for tiling in unique_tilings():
        job = _oracle_job(args, tiling)
        out = default_out(args.runs, args.profile, "fstd",
                          run_tag(tiling, job.size, args.steps, args.seed))
        results = run(job, args.limit, out, progress=args.progress)
        print(f"{out.name}: {results['seconds_per_sample']:.3f} s/sample, "
              f"seam {results['seam_score']:.3f}")
    for path in write_report(args.runs, reports_folder(args.runs, args.reports)):
        print(f"wrote {path}")
    return 0


def reports_folder(runs: Path, chosen: Optional[Path]) -> Path:
    """Where a verb's reports go: the folder chosen, else ``reports/`` inside the runs folder,
    so that a user's runs never overwrite the committed reference reports."""
    return chosen if chosen is not None else Path(runs) / "reports"


def command_report(args) -> int:
    written = write_report(args.runs, reports_folder(args.runs, args.out))
    if not written:
        raise UsageError(f"no finished runs under {args.runs}; run `python -m benchmark run` first")
    for path in written:
        print(f"wrote {path}")
    return 0


def command_tables(args) -> int:
    if args.profile not in MODEL_PROFILES:
        raise UsageError(f"tables are made on a model profile ({', '.join(MODEL_PROFILES)}), not "
                         f"{args.profile!r}; the oracle's tables come from `python -m benchmark study`")
    budget = _memory_budget(args.memory_budget)
    shard = current_shard(_device(args.device))
    loras = {k: getattr(args, f"lora_{k}") for k in TABLE3_BUCKETS if getattr(args, f"lora_{k}")}
    if args.profile == "tiny" and not loras:
        with shard.main_first():  # rank 0 trains them, the others find them cached
            loras = tiny_table3_loras()
    elif len(loras) < len(TABLE3_BUCKETS):
        print(f"Table 3: LoRAs given for {sorted(loras) or 'no'} ratio counts; the others are not run")
    for command in paper_run_commands(args.profile, args.dataset, args.runs, args.limit, args.sides,
                                      loras, args.device):
        if command[0] == "run":
            command = command + ["--patch-protocol", args.patch_protocol]
        if budget is not None and command[0] == "run":
            command = command + ["--memory-budget", budget.text]
            if "--out" in command:  # Table 3's folders: a budget makes another run
                where = command.index("--out") + 1
                command[where] += _budget_tag(budget)
        status = main(command)
        if status:
            raise UsageError(f"`python -m benchmark {' '.join(command)}` failed with status {status}")
    for path in write_report(args.runs, reports_folder(args.runs, args.reports)) if shard.main else ():
        print(f"wrote {path}")
    return 0


def tiny_table3_loras() -> dict[int, Path]:
    """Table 3 on tiny: the tiny ARAD LoRA trained on 3 and 5 ratios (on the CPU, so the same
    everywhere), cached like the default one. The nine-ratio row is Table 1's ar-plus run:
    the default tiny LoRA is the nine-ratio one, so running it again would repeat that run."""
    from baselines.arad import tiny_arad_lora

    models = load_text_to_image("tiny", torch.device("cpu"))
    return {k: tiny_arad_lora(models, asd_cache_dir(), buckets=k) for k in TABLE3_BUCKETS if k != 9}


def _run_suite(suite: list[list[str]], runs: Path):
    """Run each command of a regression suite with its runs (and reports) under ``runs``."""
    for command in suite:
        where = ["--runs", str(runs)] + (["--reports", str(runs / "reports")] if command[0] == "study" else [])
        status = main(command + where)
        if status:
            raise UsageError(f"the suite command `{' '.join(command)}` failed with status {status}")


def command_baseline(args) -> int:
    if args.profile not in SUITES:
        raise UsageError(f"no regression suite for profile {args.profile!r}; "
                         f"known: {', '.join(SUITES)}")
    suite = SUITES[args.profile]
    _run_suite(suite, args.runs)
    out = args.out or COMMITTED_REPORTS / "baselines" / f"{args.profile}.json"
    write_json(out, make_baseline(load_results(args.runs), args.profile, suite, args.runs))
    print(f"wrote {out}")
    return 0


def command_compare(args) -> int:
    if not args.baseline.exists():
        raise UsageError(f"no baseline at {args.baseline}; write one with "
                         "`python -m benchmark baseline --profile <profile>`")
    baseline = read_json(args.baseline)
    if not args.no_run:
        _run_suite(baseline["suite"], args.runs)
    checks = compare(baseline, load_results(args.runs), args.runs)
    print(render(checks, args.baseline))
    return 0 if all(check.ok for check in checks) else 1


def command_weights(args) -> int:
    if args.profile not in MODEL_PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; known profiles: {', '.join(MODEL_PROFILES)}")
    paths = _weight_paths(args)
    text, complete = listing(args.profile, paths, hash_files=not args.no_hash)
    print(text)
    return 0 if complete else 1


def command_ceiling(args) -> int:
    _resolve_profile(args)
    budget = MemoryBudget.parse(args.memory_budget)
    device = _device(args.device)
    check_budget(budget, device)
    ceiling_search.check_sides(args.min_side, args.max_side)
    extra = [item for flag, value in (("--sd21", args.sd21), ("--upscaler", args.upscaler), ("--lora", args.lora),
                                      ("--stablesr-ckpt", args.stablesr_ckpt), ("--stablesr-vae", args.stablesr_vae))
             if value for item in (flag, value)]
    print(f"ceiling of {args.method} on {args.profile} under {budget.text} ({budget.enforced_by(device)}), "
          f"sides {args.min_side} to {args.max_side} px, {ceiling_search.NOTE}")
    record = ceiling_search.search(args.method, args.profile, budget, device, args.runs, args.min_side,
                                   args.max_side, extra=tuple(extra))
    print(f"-> {ceiling_search.ceiling_dir(args.runs, args.profile, args.method, budget) / 'ceiling.json'}")
    for line in ceiling_search.summary_lines(record):
        print(line)
    return 0


def command_vae_study(args) -> int:
    if args.profile not in MODEL_PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; known profiles: {', '.join(MODEL_PROFILES)}")
    tiling, size = VaeTiling("sync", args.vae_tile, args.vae_halo), parse_size(args.size, MIN_SIDE)
    out = args.runs / "vae-tiling" / f"{args.profile}-{size[0]}x{size[1]}-t{tiling.tile}-h{tiling.halo}"
    results = vae_study(args.profile, size, _device(args.device), tiling, out)
    print(render_vae_study(results))
    print(f"-> {out / 'results.json'}")
    return 0


def command_timing(args) -> int:
    if args.profile not in MODEL_PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; known profiles: {', '.join(MODEL_PROFILES)}")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    timing = write_reference_timing(args.runs, args.profile, _device(args.device), args.repeats)
    for name, ratio in timing["ratios"].items():
        print(f"{name}: {ratio:.3f}")
    print(f"-> {timing_path(args.runs, args.profile)}")
    return 0


def command_list(args) -> int:
    print("commands:")
    for action in build_parser()._subparsers._group_actions:
        for choice in action._choices_actions:
            print(f"  {choice.dest:14s} {choice.help}")
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
    handlers = {"run": command_run, "score": command_score, "tables": command_tables, "study": command_study, "report": command_report,
                "baseline": command_baseline, "compare": command_compare, "weights": command_weights,
                "ceiling": command_ceiling, "vae-study": command_vae_study, "timing": command_timing,
                "list": command_list}
    try:
        return handlers[args.command](args)
    except (UsageError, ValueError, RunMismatchError, BaselineError, MissingWeightsError,
            MissingMetricWeightsError, DatasetError, ShardError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
