"""The suite's Python API: what every command does, callable from Python or a notebook.

``run(RunSpec(method="asd"))`` runs a method (resumable, measured, scored), ``score`` re-scores
finished runs, ``report`` writes the markdown tables, ``ceiling`` searches the largest side under
a memory budget, ``timing`` times our code against references, ``study`` runs the oracle tiling
study, ``vae_study`` compares VAE tilings, ``weights`` lists weight files. The command line only
parses into these calls (``benchmark.cli``); the tables, the regression guard
(:mod:`benchmark.guard`), the GPU plan and the tests call them too. Each loads the plugins first
(entry points, then ``include``), so a user's method or metric is everywhere a built-in one is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch

from baselines.base_models import DEFAULT_MODEL, get_base_model, name_parts
from baselines.models import WeightPaths, asd_cache_dir, load_text_to_image
from baselines.quiet import quiet_libraries
from baselines.registry import LoadContext, Sampler, get_method, oracle_method
from baselines.vae_tiling import VaeTiling
from benchmark.errors import UsageError
from benchmark.metrics.bootstrap import FILE as BOOTSTRAP_FILE, Bootstrap, paired
from benchmark.metrics.protocol import differences as protocol_differences
from benchmark.metrics.patches import DEFAULT_PROTOCOL as DEFAULT_PATCH_PROTOCOL, PatchProtocol
from benchmark.metrics.scoring import check_weights, score_run
from benchmark.metrics.weights_listing import listing
from benchmark.oracle.job import OracleFSTDJob
from benchmark.oracle.study import default_out, run_tag, unique_tilings
from benchmark.plugins import load_plugins
from benchmark.reporting.paper_runs import TABLE3_BUCKETS, specs as paper_run_specs
from benchmark.reporting.report import write_report
from benchmark.reporting.site import write_site
from benchmark.runs import ceiling as ceiling_search
from benchmark.runs import runner
from benchmark.runs.measure import MemoryBudget, check_budget
from benchmark.runs.records import read_json
from benchmark.runs.model_job import ModelJob
from benchmark.runs.reference_timing import REPEATS, write_reference_timing
from benchmark.runs.samples import DEFAULT_DATASET, plan_samples
from benchmark.runs.shard import current as current_shard
from benchmark.runs.vae_study import vae_study as run_vae_study
from benchmark.spec import WEIGHT_FIELDS, RunSpec, profile_entry


@dataclass(frozen=True)
class Finished:
    """A finished (or resumed) run: its folder and its results (``results.json``)."""

    out: Path
    results: dict
    main: bool = True  # the process that prints (rank 0 of a sharded run)


def device_of(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but torch sees no CUDA device; use --device cpu")
    return device


def run(spec: RunSpec, sampler: Optional[Sampler] = None) -> Finished:
    """Run ``spec`` (resuming what its folder holds), then score it unless ``spec.score`` is False.

    One path for every profile: the profile's job is made (a method's sampler on its models, or the analytic
    oracle's field), run by the runner, then scored. ``sampler``: the method's models, already loaded with the
    spec's settings (the GPU plan shares them between runs); by default the method loads its own."""
    load_plugins(spec.include)
    spec = spec.resolved()
    quiet_libraries(spec.progress)
    shard = current_shard(device_of(spec.device))  # under accelerate launch: this process's share of the run
    device = shard.device(device_of(spec.device))
    check_budget(spec.budget(), device)  # before the models are loaded
    job, limit, out = (_field_job if spec.entry.analytic else _model_job)(spec, sampler, shard, device)
    results = runner.run(job, limit, out, progress=spec.progress, budget=spec.budget(), shard=shard)
    if spec.score:
        results = score_run(out, device, spec.patch_protocol, shard, Bootstrap(spec.bootstrap))
    return Finished(out, results, shard.main)


def _field_job(spec: RunSpec, sampler: Optional[Sampler], shard, device: torch.device
               ) -> tuple[OracleFSTDJob, int, Path]:
    """The analytic profile's job: the oracle's field sampled with the spec's tiling (no model, so no sampler,
    and no scores)."""
    job = OracleFSTDJob(spec.oracle_tiling(), size=spec.size, steps=spec.steps, seed=spec.seed, device=device)
    return job, spec.limit, spec.run_dir()


def _model_job(spec: RunSpec, sampler: Optional[Sampler], shard, device: torch.device) -> tuple[ModelJob, int, Path]:
    """A model profile's job: the method's sampler (loaded here unless given) over the run's samples."""
    method = get_method(spec.method)
    with shard.main_first():  # rank 0 builds a missing synthetic set, the others then read it
        plan = plan_samples(spec.dataset, asd_cache_dir() / "datasets", spec.prompt, spec.size)
    limit = spec.limit or min(spec.entry.sample_limit or len(plan.samples), len(plan.samples))
    if plan.dataset is not None and limit > len(plan.samples):
        raise UsageError(f"--limit {limit} is more than the {len(plan.samples)} items of data set "
                         f"{plan.dataset.name!r}; use --limit {len(plan.samples)} or a larger set")
    if sampler is None:
        with shard.main_first():  # rank 0 trains a missing tiny LoRA as one process does, the others load it
            sampler = method.load(method, LoadContext(spec.profile, spec.settings(), device, spec.weight_paths(),
                                                      spec.model))
    if spec.score:
        check_weights(spec.profile)  # before any image is made
    job = ModelJob(method, sampler, plan, spec.seed, device, profile=spec.profile, model=spec.model)
    return job, limit, spec.run_dir(plan.dataset, sampler.describe())


def score(run_dirs: Iterable[Path], device: str = "cpu", patch_protocol: str = DEFAULT_PATCH_PROTOCOL,
          include: Iterable[str] = (), bootstrap: int = Bootstrap.resamples, protocols: str = "",
          metrics: str = "") -> list[Finished]:
    """(Re-)score finished model runs from their saved images; rewrites each ``results.json`` (and the
    bootstrap's replicates: ``bootstrap`` resamples per score's interval, 0 for none). ``protocols``: published
    protocol presets to score the images under too (``all`` or names, ``benchmark.metrics.presets``); ``metrics``:
    opt-in metrics to compute too (``all`` or names, e.g. pyiqa's ``musiq,maniqa,clipiqa``)."""
    load_plugins(include)
    quiet_libraries()
    resamples = Bootstrap(bootstrap)  # a bad count is refused before any run is read
    shard = current_shard(device_of(device))
    chosen = shard.device(device_of(device))
    return [Finished(Path(out), score_run(Path(out), chosen, patch_protocol, shard, resamples, protocols,
                                                 metrics), shard.main)
            for out in run_dirs]


def diff(run_a: Path, run_b: Path) -> dict[str, dict]:
    """Each score of two runs on the same items and seeds: A minus B, with the interval of a paired bootstrap
    (the two runs' replicates share their draws) and whether it excludes 0."""
    records = []
    for out in (Path(run_a), Path(run_b)):
        if not (out / BOOTSTRAP_FILE).is_file():
            raise UsageError(f"{out} has no {BOOTSTRAP_FILE}: score it with intervals first "
                             f"(`python -m benchmark score {out}`)")
        records.append(read_json(out / BOOTSTRAP_FILE))
    try:
        return paired(*records, records[0]["level"])
    except ValueError as error:
        raise UsageError(f"{run_a} and {run_b}: {error}") from None


def reports_folder(runs: Path, chosen: Optional[Path]) -> Path:
    """Where reports go: the folder chosen, else ``reports/`` inside the runs folder, so that a
    user's runs never overwrite the committed reference reports."""
    return Path(chosen) if chosen is not None else Path(runs) / "reports"


def report(runs: Path = Path("runs"), out: Optional[Path] = None, include: Iterable[str] = (),
           html: bool = True) -> list[Path]:
    """Write every markdown report the runs under ``runs`` allow and (``html``) the site beside them, whose
    index comes last; returns the files written (no site where there is no report)."""
    load_plugins(include)
    written = write_report(Path(runs), reports_folder(runs, out))
    if html and written:
        written.append(write_site(Path(runs), reports_folder(runs, out), written))
    return written


def study(profile: str = "oracle", size: tuple[int, int] = (2048, 2048), steps: int = 100, limit: int = 8,
          seed: int = 0, device: str = "cpu", runs: Path = Path("runs"), reports: Optional[Path] = None,
          progress: Optional[bool] = None) -> tuple[list[Finished], list[Path]]:
    """The oracle's tiling study (every tiling of Tables 4, 6, 7), then the report."""
    if not profile_entry(profile).analytic:
        raise UsageError(f"the tiling study runs on the oracle profile only, not {profile!r}; "
                         "run model profiles one method at a time with `python -m benchmark run`")
    if steps < 1 or limit < 1:
        raise UsageError(f"--steps and --limit must be at least 1, got {steps} and {limit}")
    quiet_libraries(progress)
    finished = []
    for tiling in unique_tilings():
        job = OracleFSTDJob(tiling, size=size, steps=steps, seed=seed, device=device_of(device))
        out = default_out(runs, profile, oracle_method().name, run_tag(tiling, job.size, steps, seed))
        finished.append(Finished(out, runner.run(job, limit, out, progress=progress)))
    return finished, write_report(Path(runs), reports_folder(runs, reports))


def ceiling(method: str, profile: Optional[str] = None, budget: str = "32GiB",
            min_side: int = ceiling_search.MIN_SIDE, max_side: int = ceiling_search.MAX_SIDE, device: str = "cpu",
            runs: Path = Path("runs"), weights: Optional[dict] = None, include: Iterable[str] = (),
            log=print, trial_timeout: Optional[float] = None, model: str = DEFAULT_MODEL) -> Finished:
    """The largest square side ``method`` completes under ``budget``: each trial a fresh ``run``
    process (an OOM cannot poison the next); ``weights`` are RunSpec's weight fields, forwarded;
    ``trial_timeout`` seconds per trial (None: the device's default, 0: none); ``model``: stage I's base model.
    Its folder holds ``ceiling.json``, the record returned."""
    include = tuple(include)
    load_plugins(include)
    quiet_libraries()
    spec = RunSpec(method, profile, model=model, include=include, **(weights or {})).resolved()
    limit, chosen = MemoryBudget.parse(budget), device_of(device)
    check_budget(limit, chosen)
    ceiling_search.check_sides(min_side, max_side)
    extra = [item for name in WEIGHT_FIELDS
             if getattr(spec, name) for item in (f"--{name.replace('_', '-')}", getattr(spec, name))]
    extra += [item for name in include for item in ("--include", name)]
    extra += [item for name in name_parts(spec.model) for item in ("--model", name)]
    if trial_timeout is None:
        trial_timeout = ceiling_search.default_trial_timeout(chosen)
    elif trial_timeout < 0:
        raise UsageError(f"--trial-timeout must not be negative, got {trial_timeout:g}")
    trial_timeout = trial_timeout or None
    log(f"ceiling of {' on '.join([spec.method, *name_parts(spec.model)])} on {spec.profile} under {limit.text} "
        f"({limit.enforced_by(chosen)}), "
        f"sides {min_side} to {max_side} px, {ceiling_search.NOTE}"
        + (f", at most {trial_timeout:g} s per trial" if trial_timeout else ""))
    record = ceiling_search.search(spec.method, spec.profile, limit, chosen, Path(runs), min_side, max_side,
                                   extra=tuple(extra), log=log, trial_timeout=trial_timeout, model=spec.model)
    return Finished(ceiling_search.ceiling_dir(Path(runs), spec.profile, spec.method, limit, spec.model), record)


def timing(profile: str = "tiny", repeats: int = REPEATS, device: str = "cpu", runs: Path = Path("runs"),
           include: Iterable[str] = ()) -> dict:
    """Our stage I over diffusers' pipeline and tiled stage II over its denoiser calls, timed interleaved."""
    load_plugins(include)
    profile_entry(profile, models=True)
    quiet_libraries()
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {repeats}")
    return write_reference_timing(Path(runs), profile, device_of(device), repeats)


def vae_study(profile: str = "tiny", size: tuple[int, int] = (2048, 2048), tile: int = VaeTiling.tile,
              halo: int = VaeTiling.halo, device: str = "cpu", runs: Path = Path("runs"),
              include: Iterable[str] = ()) -> Finished:
    """Every VAE tiling mode against the untiled VAE on one synthetic image."""
    load_plugins(include)
    profile_entry(profile, models=True)
    quiet_libraries()
    tiling = VaeTiling("sync", tile, halo)
    out = Path(runs) / "vae-tiling" / f"{profile}-{size[0]}x{size[1]}-t{tiling.tile}-h{tiling.halo}"
    return Finished(out, run_vae_study(profile, size, device_of(device), tiling, out))


def weights(profile: str = "paper", paths: WeightPaths = WeightPaths(), hash_files: bool = True,
            methods: Iterable[str] = (), include: Iterable[str] = (), model: str = DEFAULT_MODEL) -> tuple[str, bool]:
    """The listing of ``profile``'s weights with stage I on base ``model`` (the methods', then scoring's) and
    whether every chosen method (default: every registered one that runs on ``model``) can run with them."""
    load_plugins(include)
    profile_entry(profile, models=True)
    try:
        model = get_base_model(model).name
    except ValueError as error:
        raise UsageError(str(error)) from None
    return listing(profile, paths, hash_files=hash_files, method_names=methods, model=model)


def tables(profile: str = "tiny", dataset: str = DEFAULT_DATASET, limit: Optional[int] = None,
           sides: Optional[tuple[int, ...]] = None, loras: Optional[dict[int, str]] = None, device: str = "cpu",
           patch_protocol: str = DEFAULT_PATCH_PROTOCOL, memory_budget: Optional[str] = None,
           runs: Path = Path("runs"), reports: Optional[Path] = None, include: Iterable[str] = (),
           log=print, model: Optional[str] = None) -> list[Path]:
    """Every run behind Tables 1-4, 6, 7, Figure 7 and each base model's table on a model profile (finished runs
    reused), then the report; ``model``: that base model's runs alone (its table; SD 2.1's also the paper's). On
    tiny, Table 3's LoRAs are trained here unless given; elsewhere only the given ones run."""
    load_plugins(include)
    if model is not None:
        try:
            model = get_base_model(model).name
        except ValueError as error:
            raise UsageError(str(error)) from None
    quiet_libraries(False)
    if profile_entry(profile).analytic:
        raise UsageError("tables are made on a model profile; the oracle's tables come from `python -m benchmark study`")
    entry = profile_entry(profile, models=True)
    MemoryBudget.parse(memory_budget) if memory_budget else None  # bad input refused before any LoRA is trained
    PatchProtocol.parse(patch_protocol)
    shard = current_shard(device_of(device))
    loras = dict(loras or {})
    paper_tables = model is None or get_base_model(model).paper_tables  # Table 3 (its LoRAs) is among them
    if paper_tables and entry.trains_lora and not loras:
        with shard.main_first():  # rank 0 trains them, the others find them cached
            loras = tiny_table3_loras()
    elif paper_tables and len(loras) < len(TABLE3_BUCKETS):
        log(f"Table 3: LoRAs given for {sorted(loras) or 'no'} ratio counts; the others are not run")
    common = RunSpec("?", profile, dataset=dataset, limit=limit, device=device, runs=Path(runs), progress=False,
                     patch_protocol=patch_protocol, memory_budget=memory_budget, include=tuple(include))
    for spec in paper_run_specs(common, sides, loras, model):
        run(spec)
    return write_report(Path(runs), reports_folder(runs, reports)) if shard.main else []


def tiny_table3_loras() -> dict[int, Path]:
    """Table 3 on tiny: the tiny ARAD LoRA trained on 3 and 5 ratios (on the CPU, so the same
    everywhere), cached like the default one. The nine-ratio row is Table 1's run of the same
    method: the default tiny LoRA is the nine-ratio one, so running it again would repeat that run."""
    from baselines.arad import tiny_arad_lora

    models = load_text_to_image("tiny", torch.device("cpu"))
    return {k: tiny_arad_lora(models, asd_cache_dir(), buckets=k) for k in TABLE3_BUCKETS if k != 9}


def protocol(run_dir: Path, check: Optional[Path] = None, include: Iterable[str] = ()
             ) -> tuple[dict, str, Optional[list[str]]]:
    """A scored run's evaluation protocol and its hash; with ``check``, the fields where the other run's
    protocol differs (empty: measured alike)."""
    load_plugins(include)
    records = []
    for out in [Path(run_dir)] + ([Path(check)] if check is not None else []):
        results = read_json(out / "results.json") if (out / "results.json").is_file() else {}
        if "protocol" not in results:
            raise UsageError(f"{out} has no evaluation protocol: score it (`python -m benchmark score {out}`)")
        records.append(results)
    first = records[0]
    return first["protocol"], first["protocol_hash"], (
        protocol_differences(first["protocol"], records[1]["protocol"]) if check is not None else None)
