"""Everything this project still has to measure on a GPU, in one command: ``scripts/gpu-measure.sh``.

On ``paper-arch`` (the published architectures, random weights: costs, not images), one
CUDA device, in order of priority, under one time budget (8 minutes by default; a phase
that cannot start in what is left is skipped, and the summary names it):

1. the device's peak: the data sheet's dense fp16 figure and a measured matrix product;
2. stage II's FLOP utilisation: FLOPs of one tiled x4 UNet step (``FlopCounterMode``) ÷ its
   seconds ÷ the peak, at 1024² and 2048², with the fast-path defaults;
3. each fast-path setting against its default on that step (and stage I's attention on the
   sr-plus UNet at 1024²): seconds and peak memory, so that the CUDA defaults, estimates
   until now (:mod:`baselines.fast_path`), can be set by measurement;
4. s/image and peak VRAM of sr-plus, ar-plus, ar-tile, asd at 1024² and 2048² at the paper's
   steps (50 DDIM, 200 DDPM: no scaling);
5. stage II alone (fstd) with no overlap, explicit and implicit overlap at 1024² (Table 4's times);
   then SDXL's: sr-plus, md, asd at 2048² and 4096² at 2 + 2 steps (s/image at those steps, peak memory, calls),
   and FLUX's in bf16: sr-plus, fstd-t2i, asd, i-max at 1024², 2048², 4096², md to 2048² (:mod:`benchmark.gpu_plan`);
6. the ceilings under a 32 GiB budget (the ``ceiling`` verb's search, in fresh processes):
   asd from 8192 px (tiny already passes 8192 under 4 GiB) up to the paper's 18432 px, the
   headline, first; then sr-plus from 1024 capped at 4096 px (one step at 8192² is 14 PFLOP
   of attention). ar-tile holds the memory of asd (the same tiles), ar-plus that of sr-plus
   (a rank-4 LoRA adds a few MB), so their searches come after, where time is left;
7. ``torch.compile`` of the x4 UNet on stage II's step (compile seconds apart), the least
   needed (the CUDA default is off), so last;
8. the reports (``python -m benchmark report`` over these runs). ``summary.json`` and
   ``summary.md`` are rewritten after every phase, so a command stopped at its limit keeps
   what was measured.

``--dry-run`` takes the same path on the CPU with the tiny profile, small sizes and 1-2
steps, in well under two minutes: the test suite runs it, so the script is known to work
before a GPU is lent. Its figures are machinery checks, nothing more.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import torch

from baselines.fast_path import CUDA_ESTIMATES, DTYPES, FastPath, set_attention
from baselines.models import WeightPaths
from baselines.pipeline import AnySizePipeline
from baselines.registry import LoadContext, get_method, in_plan, stage2_alone
from baselines.settings import Settings
from baselines.stage1 import guided
from baselines.tiling import TiledDenoiser, tile_count
from benchmark import api
from benchmark.gpu_plan import DRY_PLAN, GPU_PLAN, Plan
from benchmark.reporting.report import write_report
from benchmark.runs import ceiling as ceiling_search
from benchmark.runs.flops import (PEAK_SOURCE, count_flops, dense_fp16_peak, matmul_flops_per_second,
                                  seconds_per_call)
from benchmark.runs.measure import MemoryBudget
from benchmark.runs.records import device_name, environment, write_json
from benchmark.runs.samples import DEFAULT_DATASET
from benchmark.spec import RunSpec

PROMPT = ceiling_search.PROMPT
FSTD_TILINGS = ("nonoverlap", "explicit", "implicit")


class Clock:
    """The time budget: what is left, and the phases skipped for want of it."""

    def __init__(self, seconds: float):
        self.start, self.seconds, self.skipped = time.perf_counter(), seconds, []

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def allows(self, what: str, needs: float) -> bool:
        if self.left() >= needs:
            return True
        self.skipped.append(f"{what}: {self.left():.0f} s left, about {needs:.0f} s needed")
        return False


def _reset_peak(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> Optional[float]:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def stage2_step(pipeline: AnySizePipeline, side: int, **tiling) -> Callable[[], torch.Tensor]:
    """One tiled x4 UNet step over the latent of a ``side``² output, as stage II takes it."""
    backbone, device = pipeline.backbone, pipeline.backbone.models.unet.device
    latent_side = side // backbone.latent_factor
    generator = torch.Generator(device=device).manual_seed(0)
    latent = torch.randn((1, 4, latent_side, latent_side), device=device, generator=generator)
    cond = torch.randn((1, 3, latent_side, latent_side), device=device, generator=generator)
    config = replace(pipeline.sr_tiling, **tiling)
    t = torch.tensor(999, device=device)

    @torch.no_grad()
    def step():
        tiled = TiledDenoiser(backbone.denoise, config, torch.Generator().manual_seed(0))
        return tiled(latent, t, 0, cond.to(backbone.models.unet.dtype))

    return step


def stage1_step(pipeline: AnySizePipeline, side: int) -> Callable[[], torch.Tensor]:
    """One guided SD 2.1 UNet call on the latent of a ``side``² image (sr-plus's stage I)."""
    models = pipeline.text_to_image
    device, factor = models.unet.device, 8
    negative, positive = models.encode_text(["", PROMPT]).chunk(2)
    latent = torch.randn((1, 4, side // factor, side // factor), device=device,
                         generator=torch.Generator(device=device).manual_seed(0))
    denoise = guided(models.unet, negative, positive, pipeline.settings.guidance)
    t = torch.tensor(999, device=device)
    return torch.no_grad()(lambda: denoise(latent, t, None))


def timed(step: Callable, device: torch.device, repeats: int) -> dict:
    """Seconds per call (median) and the peak memory of ``step``; out of memory is a result."""
    _reset_peak(device)
    try:
        seconds = seconds_per_call(step, device, repeats=repeats, warm_up=1)
    except torch.cuda.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        return {"seconds": None, "peak_memory_mib": _peak_mib(device), "error": str(error).splitlines()[0]}
    return {"seconds": seconds, "peak_memory_mib": _peak_mib(device)}


def _tiles(pipeline: AnySizePipeline, side: int) -> int:
    latent = side // pipeline.backbone.latent_factor
    return tile_count((latent, latent), pipeline.sr_tiling)


def utilisation(pipeline: AnySizePipeline, plan: Plan, device: torch.device, peaks: dict) -> list[dict]:
    """FLOPs of one stage II step ÷ its seconds ÷ each peak, at every size of the plan."""
    rows = []
    for side in plan.sizes:
        step = stage2_step(pipeline, side)
        row = {"size": side, "tiles_per_step": _tiles(pipeline, side), "flops_per_step": count_flops(step),
               **timed(step, device, plan.repeats)}
        if row["seconds"]:
            row["flops_per_second"] = row["flops_per_step"] / row["seconds"]
            for name, peak in peaks.items():
                row[f"utilisation_{name}"] = None if peak is None else row["flops_per_second"] / peak
        rows.append(row)
    return rows


def _twin(pipeline: AnySizePipeline, unet=None, dtype: Optional[torch.dtype] = None) -> AnySizePipeline:
    """The pipeline with another x4 UNet object (compiled) or its prompt embedding in another dtype."""
    models = pipeline.backbone.models
    models = replace(models, unet=models.unet if unet is None else unet,
                     prompt_embedding=models.prompt_embedding.to(dtype or models.prompt_embedding.dtype))
    return replace(pipeline, backbone=replace(pipeline.backbone, models=models))


@contextmanager
def _changed(do: Callable[[], None], undo: Callable[[], None]):
    do()
    try:
        yield
    finally:
        undo()


def fast_path_variants(pipeline: AnySizePipeline, sr_plus: AnySizePipeline, plan: Plan, device: torch.device,
                       clock: Clock) -> list[dict]:
    """Each fast-path setting against the defaults on stage II's step at the largest size, and
    the attention kernel on stage I's UNet at the first; the models are put back after each."""
    unet, side, repeats = pipeline.backbone.models.unet, plan.sizes[-1], plan.repeats
    fast = FastPath(**{key: pipeline.fast_path[key] for key in ("dtype", "attention", "channels_last", "compile")})
    batch, tiles = pipeline.sr_tiling.tile_batch_size, _tiles(pipeline, side)

    def row(stage: str, setting: str, step: Callable) -> dict:
        return {"stage": stage, "setting": setting, "size": side if stage == "II" else plan.sizes[0],
                **timed(step, device, repeats)}

    rows = [row("II", f"defaults (tile_batch_size={batch})", stage2_step(pipeline, side))]
    for other in sorted({1, 4, 8, 16, tiles} - {batch}):
        if other <= tiles:
            rows.append(row("II", f"tile_batch_size={other}", stage2_step(pipeline, side, tile_batch_size=other)))
    other = "classic" if fast.attention == "sdpa" else "sdpa"
    with _changed(lambda: set_attention(unet, other), lambda: set_attention(unet, fast.attention)):
        rows.append(row("II", f"attention={other}", stage2_step(pipeline, side)))
    layout = {True: torch.channels_last, False: torch.contiguous_format}
    with _changed(lambda: unet.to(memory_format=layout[not fast.channels_last]),
                  lambda: unet.to(memory_format=layout[fast.channels_last])):
        rows.append(row("II", f"channels_last={not fast.channels_last}", stage2_step(pipeline, side)))
    saved = {name: tensor.clone() for name, tensor in unet.state_dict().items()}
    for dtype in ("bf16", "fp16", "fp32"):
        if dtype != fast.dtype and (device.type == "cuda" or dtype == "bf16"):
            with _changed(lambda: unet.to(DTYPES[dtype]), lambda: unet.to(fast.torch_dtype).load_state_dict(saved)):
                rows.append(row("II", f"dtype={dtype}", stage2_step(_twin(pipeline, dtype=DTYPES[dtype]), side)))
    sd = sr_plus.text_to_image.unet
    rows.append(row("I", "defaults", stage1_step(sr_plus, plan.sizes[0])))
    with _changed(lambda: set_attention(sd, other), lambda: set_attention(sd, fast.attention)):
        rows.append(row("I", f"attention={other}", stage1_step(sr_plus, plan.sizes[0])))
    _speeds(rows)
    return rows


def _speeds(rows: list[dict]):
    """Each variant's speed ÷ its stage's defaults (the first row of the stage)."""
    for stage in ("I", "II"):
        reference = next(r["seconds"] for r in rows if r["stage"] == stage)
        for r in rows:
            if r["stage"] == stage:
                r["speed_vs_defaults"] = reference / r["seconds"] if reference and r.get("seconds") else None


def _compiled(pipeline: AnySizePipeline, side: int, device: torch.device, plan: Plan) -> dict:
    """torch.compile of the x4 UNet: the compile seconds (the first step) apart from the steady step."""
    compiled = torch.compile(pipeline.backbone.models.unet, dynamic=False, backend=plan.compile_backend)
    step = stage2_step(_twin(pipeline, unet=compiled), side)
    start = time.perf_counter()
    try:
        step()
    except Exception as error:  # inductor without a compiler, or a graph it cannot take: a result too
        return {"stage": "II", "setting": f"compile=True ({plan.compile_backend})", "size": side, "seconds": None,
                "error": f"{type(error).__name__}: {error}".splitlines()[0][:300]}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"stage": "II", "setting": f"compile=True ({plan.compile_backend})", "size": side,
            "compile_seconds": time.perf_counter() - start,
            **timed(step, device, plan.repeats)}


def _run(spec: RunSpec, sampler: Optional[AnySizePipeline] = None) -> dict:
    """One run through the API, unscored (random weights); ``sampler``: models loaded once for several runs."""
    finished = api.run(replace(spec, limit=1, score=False, progress=False), sampler)
    results = finished.results
    return {"method": results["method"], "size": results["per_image"][0]["size"],
            "status": results["per_image"][0]["status"], "seconds_per_image": results["seconds_per_image"],
            "peak_memory_mib": results["peak_memory_mib"], "oom_peak_memory_mib": results["oom_peak_memory_mib"],
            "warm_up_seconds": results["warm_up_seconds"],
            "stage1_unet_calls": results["stage1_unet_calls_per_image"],
            "stage2_denoiser_calls": results["stage2_denoiser_calls_per_image"],
            "tiling": (results.get("sr_tiling") or {}).get("strategy"), "run_dir": str(finished.out)}


def method_runs(pipelines: dict, plan: Plan, device: torch.device, runs: Path, clock: Clock) -> list[dict]:
    rows = []
    for side in plan.sizes:
        for name in pipelines:
            if clock.allows(f"{name} at {side}²", 20 if device.type == "cuda" else 1):
                spec = RunSpec(name, plan.profile, prompt=PROMPT, size=(side, side), steps=plan.steps,
                               sr_steps=plan.sr_steps, device=str(device), out=runs / plan.profile / name / f"{side}x{side}")
                rows.append(_run(spec, pipelines[name]))
    return rows


def model_runs(plan: Plan, device: torch.device, runs: Path, clock: Clock) -> list[dict]:
    """The plan's runs on other base models, each method's models loaded once; a row says its model and steps."""
    rows, settings = [], Settings(*plan.model_steps)
    for model, names, sides in plan.model_runs:
        for name in names:
            if not clock.allows(f"loading {name} on {model}", 60 if device.type == "cuda" else 1):
                continue
            sampler = get_method(name).load(get_method(name), LoadContext(plan.profile, settings, device, WeightPaths(), model))
            for side in sides:
                if clock.allows(f"{name} on {model} at {side}²", 30 if device.type == "cuda" else 1):
                    rows.append({**_run(RunSpec(name, plan.profile, model=model, prompt=PROMPT, size=(side, side),
                                                steps=settings.steps, sr_steps=settings.sr_steps, device=str(device),
                                                out=runs / plan.profile / name / f"{model}-{side}x{side}"), sampler),
                                 "model": model, "steps": list(plan.model_steps)})
    return rows


def table4_runs(plan: Plan, device: torch.device, runs: Path, clock: Clock) -> list[dict]:
    method, side, rows = stage2_alone(), plan.sizes[0], []
    for strategy in FSTD_TILINGS:
        if clock.allows(f"{method.name} {strategy} at {side}²", 15 if device.type == "cuda" else 1):
            rows.append(_run(RunSpec(method.name, plan.profile, dataset=DEFAULT_DATASET, size=(side, side),
                                     sr_steps=plan.sr_steps, tiling=strategy, device=str(device),
                                     out=runs / plan.profile / method.name / f"{side}x{side}-{strategy}")))
    baseline = next((r["seconds_per_image"] for r in rows if r["tiling"] == "nonoverlap"), None)
    for row in rows:
        row["time_vs_no_overlap"] = row["seconds_per_image"] / baseline if baseline and row["seconds_per_image"] else None
    return rows


class OutOfTime(Exception):
    pass


def ceilings(plan: Plan, device: torch.device, runs: Path, clock: Clock) -> list[dict]:
    budget, records = MemoryBudget.parse(plan.budget), []
    for method, low, high in plan.ceilings:
        if not clock.allows(f"ceiling of {method}", 60 if device.type == "cuda" else 10):
            continue
        folder = ceiling_search.ceiling_dir(runs, plan.profile, method, budget)

        def trial(side, method=method, folder=folder):
            """A trial in what is left of the budget; one that runs out of it is no measurement."""
            left = clock.left()
            if left < 5:
                raise OutOfTime(f"the time budget ran out before the trial at {side}x{side}")
            start = time.perf_counter()
            result = ceiling_search.subprocess_trial(method, plan.profile, budget, str(device), folder / "trials",
                                                     timeout=left)(side)
            if time.perf_counter() - start >= left - 0.5:
                raise OutOfTime(f"the trial at {side}x{side} did not finish in the {left:.0f} s left")
            return result

        try:
            record = ceiling_search.search(method, plan.profile, budget, device, runs, low, high, trial=trial,
                                           log=lambda line: print(f"  {method}: {line}", flush=True))
        except OutOfTime as error:
            clock.skipped.append(f"ceiling of {method}: {error} (trials so far in {folder / 'ceiling.json'})")
            continue
        records.append({"method": method, "ceiling": record["ceiling"], "at_least": record["ceiling_is_lower_bound"],
                        "min_side": low, "max_side": high, "budget": record["budget"]["text"],
                        "trials": [{k: t.get(k) for k in ("side", "status", "peak_memory_mib", "seconds", "reason")}
                                   for t in record["trials"]]})
    return records


def measure(plan: Plan, out: Path) -> dict:
    """Run every phase of ``plan`` into ``out``; returns the summary (also written there)."""
    clock, device, runs = Clock(plan.time_budget_s), torch.device(plan.device), out / "runs"
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device is visible to torch; use --dry-run on a CPU")
    say = lambda text: print(f"[{plan.time_budget_s - clock.left():6.1f} s] {text}", flush=True)  # noqa: E731
    settings = Settings(plan.steps, plan.sr_steps)
    say(f"loading {plan.profile} models on {device_name(device)}")
    context = LoadContext(plan.profile, settings, device, WeightPaths())
    pipelines = {name: get_method(name).load(get_method(name), context) for name in in_plan("gpu")}
    # FSTD's pipeline for stage II's step and compile; one at the target size for stage I's attention
    staged = [p for p in pipelines.values() if isinstance(p, AnySizePipeline)]  # the paper's pipelines
    tiled = next(p for p in staged if p.stages.stage2 == "implicit")
    direct = next(p for p in staged if p.stages.base and not p.stages.stage2)
    summary = {"kind": "gpu-measure", "dry_run": plan.device == "cpu", "plan": vars(plan),
               "environment": environment(device), "fast_path": tiled.fast_path,
               "fast_path_estimates": CUDA_ESTIMATES, "method_runs": [], "table4": [], "model_runs": [], "ceilings": [],
               "fast_path_variants": [], "stage2_utilisation": [], "reports": [], "steps_note": (
                   f"the paper's steps ({plan.steps} DDIM, {plan.sr_steps} DDPM): s/image as measured, no scaling"
                   if (plan.steps, plan.sr_steps) == (50, 200) else
                   f"{plan.steps} DDIM + {plan.sr_steps} DDPM steps: machinery check, not the paper's cost")}

    def save(phase: str):
        """After every phase: a command killed at its limit still leaves what was measured."""
        summary.update(skipped=clock.skipped, seconds=plan.time_budget_s - clock.left(), last_phase=phase)
        write_json(out / "summary.json", summary)
        (out / "summary.md").write_text(render(summary))

    say("peak: data sheet and a measured matrix product")
    peaks = {"datasheet": dense_fp16_peak(device),
             "matmul": matmul_flops_per_second(device, DTYPES[tiled.fast_path["dtype"]], plan.matmul_side)}
    summary["peak"] = {"dense_fp16_datasheet_flops": peaks["datasheet"], "source": PEAK_SOURCE,
                       "matmul_flops_per_second": peaks["matmul"], "matmul_side": plan.matmul_side}
    say("stage II FLOP utilisation")
    summary["stage2_utilisation"] = utilisation(tiled, plan, device, peaks)
    save("utilisation")
    say("fast-path variants")
    summary["fast_path_variants"] = fast_path_variants(tiled, direct, plan, device, clock)
    save("fast-path variants")
    say("method runs")
    summary["method_runs"] = method_runs(pipelines, plan, device, runs, clock)
    save("method runs")
    say("Table 4: stage II alone")
    summary["table4"] = table4_runs(plan, device, runs, clock)
    save("Table 4")
    del pipelines, direct
    say("other base models")
    summary["model_runs"] = model_runs(plan, device, runs, clock)
    save("other base models")
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the ceilings' trials run in their own processes
    say(f"ceilings under {plan.budget}")
    summary["ceilings"] = ceilings(plan, device, runs, clock)
    save("ceilings")
    if not tiled.fast_path["compile"] and clock.allows("the compile variant", 120 if device.type == "cuda" else 30):
        say(f"torch.compile ({plan.compile_backend}) of the x4 UNet: the least needed, so last")
        summary["fast_path_variants"].append(_compiled(tiled, plan.sizes[-1], device, plan))
        _speeds(summary["fast_path_variants"])
    summary["reports"] = [str(path) for path in write_report(runs, out / "reports")]
    save("done")
    say(f"wrote {out / 'summary.json'} and {out / 'summary.md'}")
    return summary


def _f(value, digits: int = 2, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def _tera(value) -> str:
    """FLOP or FLOP/s in tera, three significant digits (a CPU's are small)."""
    return "–" if value is None else f"{value * 1e-12:.3g}"


def _run_table(rows: list[dict], *first: str) -> list[str]:
    """Method runs as markdown rows, the columns ``first`` (e.g. the model) first."""
    head = [*first, "method", "size", "status", "s / image", "peak MiB", "stage I UNet calls", "stage II calls"]
    cells = [[*(str(r[key]) for key in first), r["method"], f"{r['size'][0]}×{r['size'][1]}", r["status"],
              _f(r["seconds_per_image"]), _f(r["peak_memory_mib"] or r["oom_peak_memory_mib"], 0),
              _f(r["stage1_unet_calls"], 0), _f(r["stage2_denoiser_calls"], 0)] for r in rows]
    return ["| " + " | ".join(line) + " |" for line in [head, ["---"] * len(head), *cells]]


def render(summary: dict) -> str:
    """The summary as markdown: every table says how it was made."""
    env, plan = summary["environment"], summary["plan"]
    lines = [f"# GPU measurements ({'dry run: tiny on a CPU, machinery only' if summary['dry_run'] else plan['profile']})",
             "",
             f"Device {env['device']}, torch {env.get('packages', {}).get('torch', torch.__version__)}, commit "
             f"{env['git']['commit']}{' (local changes)' if env['git'].get('dirty') else ''}, {env['date']}; "
             f"profile {plan['profile']} (random weights: costs, not image quality); {summary['steps_note']}; "
             f"fast path {', '.join(f'{k} {v}' for k, v in summary['fast_path'].items() if k not in ('given', 'defaults'))}. "
             f"Took {summary['seconds']:.0f} s.", ""]
    peak = summary["peak"]
    lines += ["## Stage II FLOP utilisation", "",
              f"Peak: {_tera(peak['dense_fp16_datasheet_flops'])} TFLOP/s dense fp16 ({peak['source']}); "
              f"measured {peak['matmul_side']}³ matrix product {_tera(peak['matmul_flops_per_second'])} TFLOP/s. "
              "FLOPs: torch.utils.flop_counter over one tiled step, every tile.",
              "", "| output | tiles / step | TFLOP / step | s / step | TFLOP/s | ÷ data sheet | ÷ matmul | peak MiB |",
              "|---|---|---|---|---|---|---|---|"]
    for row in summary["stage2_utilisation"]:
        lines.append(f"| {row['size']}² | {row['tiles_per_step']} | {_tera(row['flops_per_step'])} | "
                     f"{_f(row['seconds'], 4)} | {_tera(row.get('flops_per_second'))} | "
                     f"{_f(row.get('utilisation_datasheet'), 3)} | {_f(row.get('utilisation_matmul'), 3)} | "
                     f"{_f(row['peak_memory_mib'], 0)} |")
    lines += ["", "## Fast path: each setting against the defaults", "",
              "| stage | setting | s / step | speed ÷ defaults | peak MiB | note |", "|---|---|---|---|---|---|"]
    for row in summary["fast_path_variants"]:
        note = row.get("error") or (f"compiled in {row['compile_seconds']:.1f} s" if row.get("compile_seconds") else "")
        lines.append(f"| {row['stage']} | {row['setting']} | {_f(row.get('seconds'), 4)} | "
                     f"{_f(row.get('speed_vs_defaults'), 2)} | {_f(row.get('peak_memory_mib'), 0)} | {note} |")
    lines += ["", "## s / image and peak memory", "", *_run_table(summary["method_runs"])]
    lines += ["", "## Table 4: stage II alone (fstd)", "",
              "| tiling | s / image | ÷ no overlap | denoiser calls | peak MiB |", "|---|---|---|---|---|"]
    for row in summary["table4"]:
        lines.append(f"| {row['tiling']} | {_f(row['seconds_per_image'])} | {_f(row['time_vs_no_overlap'])} | "
                     f"{_f(row['stage2_denoiser_calls'], 0)} | {_f(row['peak_memory_mib'], 0)} |")
    lines += ["", f"## Other base models: s / image and peak memory ({'/'.join(map(str, plan['model_steps']))} steps, "
              "stage I / II)", "",
              *_run_table(summary["model_runs"], "model")]
    lines += ["", f"## Ceilings under {plan['budget']}", "", "| method | ceiling | trials |", "|---|---|---|"]
    for row in summary["ceilings"]:
        trials = "; ".join(f"{t['side']} {t['status']}" for t in row["trials"])
        lines.append(f"| {row['method']} | {'≥ ' if row['at_least'] else ''}{row['ceiling'] or 0} px | {trials} |")
    lines += ["", "## Skipped", ""] + ([f"- {line}" for line in summary["skipped"]] or ["- nothing"])
    lines += ["", "Reports: " + (", ".join(summary["reports"]) or "none")
              + ("" if summary.get("last_phase") == "done" else f" (stopped after: {summary.get('last_phase')})"), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.gpu_measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs") / "gpu-measure", help="output folder (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="the same path on the CPU: tiny profile, small sizes, 1-2 steps")
    parser.add_argument("--time-budget", type=float, default=None,
                        help=f"seconds for everything (default: {GPU_PLAN.time_budget_s:g}; dry run {DRY_PLAN.time_budget_s:g})")
    args = parser.parse_args(argv)
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    if args.time_budget is not None:
        plan = replace(plan, time_budget_s=args.time_budget)
    measure(plan, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
