"""The options several verbs share, each declared once, and the parse of a run's options into a RunSpec.

An option that fills a field of :class:`benchmark.spec.RunSpec` takes its default from that field
(:func:`spec_default`), so that a default is written once, in the specification, for the command line and the
Python API alike (``tests/test_cli_spec.py`` holds every option of ``run`` to it)."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Optional

from baselines.base_models import base_models
from baselines.fast_path import ATTENTIONS, CPU_DEFAULTS, CUDA_DEFAULTS, DTYPES
from baselines.paper_weights import PATH_VARIABLES, model_variable
from baselines.profiles import ORACLE_DEFAULTS as ORACLE, default_profile, model_profiles, profiles
from baselines.settings import BACKBONES
from baselines.stage2 import COLOUR_FIXES
from baselines.tiling import FILLS, OFFSET_MODES, STAGE2_STRATEGIES, WEIGHTINGS
from baselines.vae_tiling import VAE_TILING_MODES
from benchmark.metrics.bootstrap import Bootstrap
from benchmark.metrics.patches import PatchProtocol
from benchmark.spec import RunSpec, parse_size


def spec_default(name: str):
    """The default of the run specification's field ``name``: the one place it is written."""
    field = next(item for item in fields(RunSpec) if item.name == name)
    return field.default if field.default is not MISSING else field.default_factory()


def escaped(text: str) -> str:
    """Text from a registry (a method's summary, a profile's description) made safe for argparse, which reads
    every help string as a %-format (a bare "95%" crashes ``--help``)."""
    return text.replace("%", "%%")


def add_include(parser: argparse.ArgumentParser):
    parser.add_argument("--include", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="import a module (by name, on the Python path) or a .py file that registers methods "
                             "or metrics (repeatable; installed entry points of asd_bench.methods and "
                             "asd_bench.metrics load by themselves; see docs/extending.md)")


def add_device(parser: argparse.ArgumentParser):
    parser.add_argument("--device", default=spec_default("device"), help="torch device (default: %(default)s)")


def add_runs(parser: argparse.ArgumentParser, default: Optional[Path] = None, what: str = "where runs are written"):
    parser.add_argument("--runs", type=Path, default=spec_default("runs") if default is None else default, help=f"{what} (default: %(default)s)")


def add_reports(parser: argparse.ArgumentParser, flag: str = "--reports"):
    parser.add_argument(flag, type=Path, default=None,
                        help="where reports are written (default: RUNS/reports; the committed reference "
                             f"reports are rewritten only by an explicit {flag} reports)")


def add_progress(parser: argparse.ArgumentParser):
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (default: only when stderr is a terminal, so logs stay clean)")


def add_model_profile(parser: argparse.ArgumentParser, default: str = "tiny"):
    parser.add_argument("--profile", default=default,
                        help=f"one of {', '.join(model_profiles())} (default: %(default)s; `list` describes them)")


def add_model(parser: argparse.ArgumentParser):
    parser.add_argument("--model", default=spec_default("model"), metavar="NAME",
                        help="stage I's base model: " + escaped("; ".join(f"{name}: {model.summary}" for name, model
                                                                          in base_models().items()))
                             + " (default: %(default)s; a method runs on the models it declares, `list` shows them; "
                               "stage II keeps --backbone)")


def size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _patch_protocol(text: str) -> str:
    try:
        return PatchProtocol.parse(text).label
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_patch_protocol(parser):
    parser.add_argument("--patch-protocol", type=_patch_protocol, default=spec_default("patch_protocol"),
                        metavar="grid|random:K[:SEED]",
                        help="crops of fid_patch / kid_patch at native resolution, 299 px: grid (non-overlapping, "
                             "plus a pass shifted by half a crop) or K seeded random crops per image "
                             "(default: %(default)s)")


def _names(resolve):
    """An argparse type: ``all`` or names separated by commas, as ``resolve`` reads them (its ValueError, which
    names the known ones, becomes the usage error); empty, the default, is none."""
    def parse(text: str) -> str:
        try:
            return ",".join(resolve(text)) if text else ""
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _preset_names(text: str) -> list[str]:
    from benchmark.metrics.presets import resolve

    return [preset.name for preset in resolve(text)]


def _opt_in_names(text: str) -> tuple[str, ...]:
    from benchmark.metrics.registry import resolve_opt_in

    return resolve_opt_in(text)


def add_protocols(parser):
    parser.add_argument("--protocols", type=_names(_preset_names), default="", metavar="all|PRESET[,PRESET...]",
                        help="also score the images under published evaluation protocols (`list` shows the presets "
                             "and their sources), each value with its interval, into scores.protocols: the report's "
                             "table \"How much the protocol moves a score\" (default: none)")


def add_opt_in_metrics(parser):
    parser.add_argument("--metrics", type=_names(_opt_in_names), default="", metavar="all|METRIC[,METRIC...]",
                        help="also compute opt-in metrics, those too costly or on too large a package for every run "
                             "(`list` marks them; e.g. pyiqa's musiq, maniqa, clipiqa, which need the iqa extra) "
                             "(default: none)")


def add_bootstrap(parser):
    parser.add_argument("--bootstrap", type=int, default=spec_default("bootstrap"), metavar="N",
                        help="resamples of the seeded bootstrap over the generated images that gives every score its "
                             f"{Bootstrap.level:.0%}% interval (references fixed; 0: no intervals; default: %(default)s)")


def add_memory_budget(parser, *names: str, default: Optional[str] = None):
    parser.add_argument(*(names or ("--memory-budget",)), dest="memory_budget", default=default, metavar="SIZE",
                        help="hold each sample to this much memory, e.g. 32GiB (the paper's card), "
                             "512MiB, 32GB; a sample over it is recorded as out of memory and the run "
                             "goes on. CUDA: set_per_process_memory_fraction(budget / device total); "
                             "CPU: the soft RLIMIT_AS during each sample, so that the process cannot "
                             "map more than the budget minus what it holds at sample start"
                             + (" (default: %(default)s)" if default else " (default: none)"))


def add_weight_paths(parser):
    parser.add_argument("--sd21", default=None, help="paper: SD 2.1-base folder (default: "
                        f"${model_variable(spec_default('model'))}, else the Hugging Face cache)")
    parser.add_argument("--model-weights", default=None, metavar="DIR",
                        help="paper: the folder of the run's base model (--model), whichever it is, in diffusers' "
                             "layout (default: $ASD_<NAME>, the model's name upper-cased with - as _: $ASD_SDXL, "
                             "else the Hugging Face cache under $ASD_<NAME>_REPO or the model's repo ids; see "
                             "docs/methods.md, \"Weights\")")
    parser.add_argument("--vae", default=None, metavar="DIR",
                        help="paper: a VAE folder replacing the base model's own, e.g. SDXL's fp16-fix VAE "
                             "(default: $ASD_<NAME>_VAE, else the VAE in the model's folder)")
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


def add_run_arguments(parser: argparse.ArgumentParser):
    """Every field of a run specification as an option (``run``'s)."""
    parser.add_argument("--profile", default=None,
                        help=escaped("; ".join(f"{name}: {p.description}" for name, p in profiles().items()))
                        + f" (default: {default_profile(True).name} for the oracle's method, "
                          f"{default_profile(False).name} otherwise)")
    add_model(parser)
    parser.add_argument("--size", type=size, default=None,
                        help=f"output size HxW in image pixels (default: {ORACLE['size'][0]}x{ORACLE['size'][1]} on "
                             "oracle, the data set items' sizes otherwise)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"sampling steps (default: {ORACLE['steps']} on oracle; stage I DDIM steps otherwise: "
                             + ", ".join(f"{name} {p.steps[0]}" for name, p in model_profiles().items())
                             + "; a method with stage II alone takes them as --sr-steps)")
    parser.add_argument("--limit", type=int, default=None,
                        help=f"number of samples (default: {ORACLE['limit']} on oracle, "
                             + ", ".join(f"{p.sample_limit} on {name}" for name, p in profiles().items()
                                         if p.sample_limit)
                             + " (of synthetic: 256x1024, 768x1024, 1024x256), the whole data set otherwise)")
    parser.add_argument("--seed", type=int, default=spec_default("seed"), help="run seed (default: %(default)s)")
    add_device(parser)
    add_progress(parser)
    models = parser.add_argument_group(f"model profiles ({', '.join(model_profiles())})")
    models.add_argument("--dataset", default=spec_default("dataset"),
                        help="data set name or built folder whose items (caption, size, reference image; LR "
                             "input for super-resolution) are the samples, spread over sizes so that --limit N "
                             "takes N shapes (default: %(default)s, built on first use in "
                             "$ASD_BENCH_CACHE/datasets, else ~/.cache/asd-bench/datasets)")
    models.add_argument("--prompt", default=None,
                        help="one prompt for every sample, replacing the items' captions; with --size too, one "
                             "sample and no data set (default: the items' captions)")
    models.add_argument("--no-score", dest="score", action="store_false",
                        help="skip scoring (every registered metric) after the run; "
                             "`python -m benchmark score RUN_DIR` does it later")
    add_patch_protocol(models)
    add_bootstrap(models)
    models.add_argument("--sr-steps", type=int, default=None,
                        help="stage II DDPM steps (default: "
                             + ", ".join(f"{name} {p.steps[1]}" for name, p in model_profiles().items()) + ")")
    models.add_argument("--guidance", type=float, default=None,
                        help="stage I guidance scale (default: the base model's pipeline's: "
                             + ", ".join(f"{name} {m.guidance:g}" for name, m in base_models().items())
                             + "; classifier-free on SD, embedded on FLUX dev, unused on FLUX schnell; the "
                             "authors' UI uses 7.0 on SD 2.1)")
    models.add_argument("--colour-fix", default=spec_default("colour_fix"),
                        help=f"stage II colour fix: {', '.join(COLOUR_FIXES)} (default: %(default)s)")
    models.add_argument("--vae-tiling", default=spec_default("vae_tiling"), choices=VAE_TILING_MODES,
                        help="how every VAE encode and decode is tiled: sync (tiles with a halo, GroupNorm "
                             "statistics shared over the image: memory flat in the size), diffusers "
                             "(AutoencoderKL.enable_tiling), off (one call), auto (sync where the latent is "
                             "larger than one tile; default: %(default)s)")
    add_weight_paths(models)
    models.add_argument("--backbone", default=None, choices=tuple(BACKBONES),
                        help="stage II's SR model: " + "; ".join(f"{k}: {v}" for k, v in BACKBONES.items())
                             + " (default: stablesr on paper when both its files are found, the paper's; x4 otherwise)")
    models.add_argument("--cfw-weight", type=float, default=spec_default("cfw_weight"), metavar="W",
                        help="StableSR's CFW weight w: decoder features + w * fusion (0: the plain SD decoder; "
                             "default: %(default)s, the authors')")
    fast = parser.add_argument_group(
        "fast path (unset: the device's default; CPU: fp32, sdpa, no channels-last, no compile, outputs unchanged; "
        "CUDA: " + ", ".join(f"{k} {v}" for k, v in CUDA_DEFAULTS.items() if k != "tile_batch_size")
        + ", estimates from FLOP and memory counts until measured, see docs/gpu.md, \"The fast path\")")
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
    tiling = parser.add_argument_group(
        "tiling (stage II; on model profiles sizes are in the SR backbone's latent px and default to the "
        "paper's 512 px tiles, 256 px offset range and overlap)")
    tiling.add_argument("--tiling", default=None, help=f"one of {', '.join(STAGE2_STRATEGIES)}; only for a method that "
                        "leaves stage II's strategy to the run (fstd), the others fix theirs (default: implicit)")
    tiling.add_argument("--tile", type=int, default=None,
                        help=f"tile side in latent px (default: {ORACLE['tile']} on oracle)")
    tiling.add_argument("--overlap", type=int, default=None,
                        help=f"explicit: overlap in latent px (default: {ORACLE['overlap']} on oracle)")
    tiling.add_argument("--weighting", default=spec_default("weighting"),
                        help=f"tile blending weights: {', '.join(WEIGHTINGS)} (default: %(default)s)")
    tiling.add_argument("--offset", default=spec_default("offset"), help=f"implicit: {', '.join(OFFSET_MODES)}; fixed "
                        "is a constant shift of range/2 on every shifting step (default: %(default)s)")
    tiling.add_argument("--offset-range", type=int, default=None,
                        help="implicit: offsets are uniform in [0, range) latent px "
                             f"(default: {ORACLE['offset_range']} on oracle)")
    tiling.add_argument("--reset-every", type=int, default=spec_default("reset_every"),
                        help="implicit: the offset is (0, 0) every k-th step (default: %(default)s)")
    tiling.add_argument("--fill", default=spec_default("fill"), help=f"implicit: uncovered strip, one of "
                        f"{', '.join(FILLS)}: eps = previous step's noise prediction (released code), latent = "
                        "previous latent (paper text) (default: %(default)s)")
    tiling.add_argument("--tile-batch-size", type=int, default=None,
                        help="tiles per denoiser call; for md, views per call (default: "
                             f"{CPU_DEFAULTS['tile_batch_size']} on CPU and the oracle, "
                             f"{CUDA_DEFAULTS['tile_batch_size']} on CUDA)")
    add_runs(parser, what="root of the default run directory")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: RUNS/<profile>/<method>/<tag>)")
    add_memory_budget(parser)
    add_include(parser)


def spec_from(args: argparse.Namespace, **fixed) -> RunSpec:
    """The run specification of parsed options: every option named like a field fills it."""
    values = {item.name: getattr(args, item.name) for item in fields(RunSpec) if hasattr(args, item.name)}
    values["include"] = tuple(values.get("include") or ())
    return RunSpec(**{**values, **fixed})
