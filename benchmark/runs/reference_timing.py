"""Our code's time against references timed in the same process, for the CI guard.

The regression guard's other time figures are ratios between our own methods, so a change
that slows every method alike passes them. These two ratios each put our code over
something that is not ours, measured a moment apart on the same machine, so that a faster
or slower machine cancels out and a slowdown of our code does not:

- **stage I ÷ diffusers**: our untiled stage I (:func:`baselines.stage1.generate`) over
  diffusers' ``StableDiffusionPipeline`` built from the same models, with the same seed,
  steps and guidance (the two images must agree; the largest difference is recorded);
- **tiled stage II ÷ its denoiser calls**: the time of stage II's tiled sampling loop
  (:func:`baselines.tiled_sampling.sample` through the tiling engine) over the time spent
  inside its denoiser calls alone; what is left is the engine's own work (cutting,
  weighting, stitching) and the scheduler's.

Each figure is the ratio of the fastest of ``repeats`` interleaved runs after a warm-up, on a CPU
in the process's CPU time on one thread, which other load on the machine disturbs least.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

from baselines.bicubic import Bicubic
from baselines.models import load_text_to_image, load_upscaler
from baselines.stage1 import DEFAULT_GUIDANCE, generate
from baselines.stage2 import X4UpscalerBackbone, paper_tiling
from baselines.tiled_sampling import sample
from baselines.tiling import TiledDenoiser
from benchmark.runs.measure import synchronize
from benchmark.runs.records import environment, read_json, write_json

STAGE1_VS_DIFFUSERS = "stage I ÷ diffusers StableDiffusionPipeline"
TILING_OVERHEAD = "tiled stage II ÷ its denoiser calls"
#: Fastest of ten: with two busy loops beside it, stage I's ratio moved by under 5 % (docs/regression.md).
REPEATS = 10
FOLDER = "timing"  # under the runs folder: timing/<profile>/timing.json
#: Small enough for seconds on a CPU, large enough that stage II has several tiles per step.
SETTINGS = {"stage1_size": (256, 256), "stage1_steps": 4, "stage2_size": (1024, 1024), "stage2_steps": 4,
            "stage2_tiling": "implicit", "seed": 5}


@dataclass
class Timed:
    """The fastest of several timings of one callable."""

    seconds: float = float("inf")

    def add(self, seconds: float):
        self.seconds = min(self.seconds, seconds)


def _clock(device: torch.device) -> Callable[[], float]:
    """On a CPU the process's CPU time (one thread: other processes' load does not count in it); on a GPU the
    wall clock, the device synchronised."""
    return time.process_time if device.type == "cpu" else time.perf_counter


def _time(function: Callable, device: torch.device):
    clock = _clock(device)
    synchronize(device)
    start = clock()
    value = function()
    synchronize(device)
    return value, clock() - start


def stage1_vs_diffusers(models, size, steps: int, seed: int, repeats: int) -> dict:
    """Our untiled stage I and ``StableDiffusionPipeline`` on ``models``, fastest of ``repeats`` each."""
    device = models.unet.device
    pipe = StableDiffusionPipeline(vae=models.vae, text_encoder=models.text_encoder, tokenizer=None,
                                   unet=models.unet, scheduler=DDIMScheduler.from_config(models.scheduler_config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    negative, positive = models.encode_text(["", "a lighthouse"]).chunk(2)
    latent_shape = (1, models.unet.config.in_channels, size[0] // 8, size[1] // 8)

    def ours():
        return generate(models, "a lighthouse", size, steps=steps, guidance=DEFAULT_GUIDANCE,
                        generator=torch.Generator().manual_seed(seed)).image

    def theirs():
        latents = torch.randn(latent_shape, generator=torch.Generator().manual_seed(seed)).to(device)
        return pipe(prompt_embeds=positive, negative_prompt_embeds=negative, height=size[0], width=size[1],
                    num_inference_steps=steps, guidance_scale=DEFAULT_GUIDANCE, latents=latents,
                    output_type="pt").images

    our_time, their_time, difference = Timed(), Timed(), 0.0
    with torch.no_grad():
        ours(), theirs()  # warm-up: first calls pay for allocations the timed ones would not
        for _ in range(repeats):
            image, seconds = _time(ours, device)
            our_time.add(seconds)
            reference, seconds = _time(theirs, device)
            their_time.add(seconds)
            difference = max(difference, (image.float() / 2 + 0.5 - reference.float()).abs().max().item())
    return {"ours_s": our_time.seconds, "reference_s": their_time.seconds,
            "ratio": our_time.seconds / their_time.seconds, "max_abs_difference": difference}


def tiling_overhead(backbone, size, steps: int, strategy: str, seed: int, repeats: int) -> dict:
    """Stage II's tiled sampling loop against the time inside its denoiser calls, fastest of ``repeats``."""
    device = backbone.models.unet.device
    spent = 0.0

    def timed_denoise(tiles, t, cond_tiles):
        nonlocal spent
        prediction, seconds = _time(lambda: backbone.denoise(tiles, t, cond_tiles), device)
        spent += seconds
        return prediction

    generator = torch.Generator().manual_seed(seed)
    source = torch.rand((1, 3, size[0] // backbone.latent_factor, size[1] // backbone.latent_factor),
                        generator=generator) * 2 - 1
    tiling = paper_tiling(strategy, backbone.latent_factor)
    loop_time, denoiser_time = Timed(), Timed()
    with torch.no_grad():
        for _ in range(repeats):
            scheduler = backbone.scheduler()
            scheduler.set_timesteps(steps)
            start, cond = backbone.prepare(source.to(device), Bicubic(source.to(device), size), size,
                                           scheduler.timesteps[:1], scheduler, torch.Generator().manual_seed(seed))
            tiled = TiledDenoiser(timed_denoise, tiling, torch.Generator().manual_seed(seed))
            spent = 0.0
            _, seconds = _time(lambda: sample(tiled, scheduler, start, cond, torch.Generator().manual_seed(seed)),
                               device)
            loop_time.add(seconds)
            denoiser_time.add(spent)
    return {"loop_s": loop_time.seconds, "denoiser_s": denoiser_time.seconds,
            "ratio": loop_time.seconds / denoiser_time.seconds, "denoiser_calls": tiled.calls,
            "tiles_per_step": tiled.tile_evaluations // steps}


def reference_timing(profile: str, device: torch.device, repeats: int = REPEATS) -> dict:
    """Both ratios on ``profile``'s models, with the settings that made them. On a CPU both sides run on one
    thread: with other processes busy, two threads of one side and of the other are not scheduled alike."""
    text_to_image = load_text_to_image(profile, device)
    backbone = X4UpscalerBackbone(load_upscaler(profile, device))
    s = SETTINGS
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        stage1 = stage1_vs_diffusers(text_to_image, s["stage1_size"], s["stage1_steps"], s["seed"], repeats)
        stage2 = tiling_overhead(backbone, s["stage2_size"], s["stage2_steps"], s["stage2_tiling"], s["seed"],
                                 repeats)
    finally:
        torch.set_num_threads(threads)
    return {"profile": profile, "device_type": device.type, "repeats": repeats,
            "threads": 1 if device.type == "cpu" else threads,
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in s.items()},
            "stage1": {**stage1, "backbone": None, "reference": "diffusers.StableDiffusionPipeline"},
            "stage2": {**stage2, "backbone": backbone.name},
            "ratios": {STAGE1_VS_DIFFUSERS: stage1["ratio"], TILING_OVERHEAD: stage2["ratio"]}}


def timing_path(runs: Path, profile: str) -> Path:
    return Path(runs) / FOLDER / profile / "timing.json"


def write_reference_timing(runs: Path, profile: str, device: torch.device, repeats: int = REPEATS) -> dict:
    """Measure :func:`reference_timing` and write it, with the environment, to :func:`timing_path`."""
    timing = {**reference_timing(profile, device, repeats), "environment": environment(device)}
    write_json(timing_path(runs, profile), timing)
    return timing


def read_reference_timing(runs: Path, profile: str) -> Optional[dict]:
    path = timing_path(runs, profile)
    return read_json(path) if path.exists() else None
