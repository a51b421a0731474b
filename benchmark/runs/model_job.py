"""A method on a model profile as a runner job: one image per sample, saved as PNG.

Samples come from :mod:`benchmark.runs.samples` (a data set's items, or one prompt), cycled
when more samples than the plan holds are asked for; each sample has its own seeds (stage
I noise, stage II noise, tile offsets), derived from the run seed and the sample index, so
a run replays exactly and resumes sample by sample. ``fstd`` (stage II alone) upscales the
set's low-resolution images (or its HR images downscaled by the backbone's factor) and
saves both beside its output, so that :mod:`benchmark.metrics.scoring` can compare them later.
A sample that ran out of memory has no image: its row in ``per_image`` says ``"status":
"oom"`` and the means are over the finished samples (None when there is none).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from baselines.arad.buckets import to_tensor
from baselines.base_models import DEFAULT_MODEL
from baselines.registry import LOW_RESOLUTION, Method, Sampler
from baselines.sample_record import SampleRecord, StageOne, StageTwo, sample_record
from baselines.settings import MIN_SIDE, Seeds
from baselines.stage2 import to_uint8
from benchmark.runs.runner import SampleFailed, derived_seed, finished
from benchmark.runs.samples import Plan

#: A row's figures that only a made image has (None for a sample that ran out of memory or failed).
IMAGE_FIGURES = ("stage1_size", "stage1_unet_calls", "stage2_denoiser_calls", "stage2_tile_evaluations",
                 "stage2_tiles_per_step", "cropped", "image")


def to_image(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W), 8-bit or in [-1, 1] → 8-bit RGB, rounded as diffusers' image processor rounds it."""
    array = image[0] if image.dtype == torch.uint8 else to_uint8(image[0])
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())


@dataclass
class ModelJob:
    """A registered method's sampler on a plan of samples."""

    method: Method
    pipeline: Sampler
    plan: Plan
    seed: int = 0
    device: torch.device = torch.device("cpu")
    warm_up_seconds: Optional[float] = None  # compilation included, with --compile
    profile: Optional[str] = None  # for a sampler whose description does not say it
    model: str = DEFAULT_MODEL  # stage I's base model (baselines.base_models)

    @property
    def stage_two_alone(self) -> bool:
        return self.method.inputs == LOW_RESOLUTION

    def parameters(self) -> dict:
        origin = {} if self.method.built_in else {"method_origin": self.method.origin}
        return {"profile": self.profile, "model": self.model, **self.pipeline.describe(), "method": self.method.name,
                "task": self.method.task, **origin, "seed": self.seed, "device_type": self.device.type, **self.plan.as_record(),
                "conditioning": ("the data set's LR images (or HR downscaled by the SR factor)"
                                 if self.stage_two_alone else "captions")}

    def warm_up(self):
        """One small untimed sample at one step per stage (where the method offers ``one_step``: the
        first call's costs are in the first step, and a bucket method's stage I is full-size whatever
        the size asked); with ``--compile`` also one at every size of the plan, so that compilation
        (one graph per shape) stays out of the samples' seconds."""
        start = time.perf_counter()
        sizes = [(MIN_SIDE, MIN_SIDE)]
        if (getattr(self.pipeline, "fast_path", None) or {}).get("compile"):
            sizes += sorted({tuple(sample.size) for sample in self.plan.samples})
        one_step = getattr(self.pipeline, "one_step", None)
        pipeline = one_step() if one_step else self.pipeline
        for size in sizes:
            source = None
            if self.stage_two_alone:
                factor = self.pipeline.input_factor
                source = torch.zeros((1, 3, -(-size[0] // factor), -(-size[1] // factor)), device=self.device)
            pipeline(self.plan.samples[0].caption, size, Seeds(0, 0, 0), source)
        self.warm_up_seconds = time.perf_counter() - start

    def sample(self, index: int):
        return self.plan.samples[index % len(self.plan.samples)]

    def sample_size(self, index: int) -> tuple[int, int]:
        return tuple(self.sample(index).size)

    def run_sample(self, index: int):
        sample = self.sample(index)
        prompt, size = sample.caption, sample.size
        seeds = Seeds(*(derived_seed(self.seed, index, stream) for stream in ("noise", "sr_noise", "offsets")))
        outputs = {}
        source = None
        if self.stage_two_alone:
            high = sample.high_resolution()
            low = sample.low_resolution(high, self.pipeline.input_factor)
            source = to_tensor(low)[None].to(self.device)
            outputs.update(hr=high, lr=low)
        image, record = self.pipeline(prompt, size, seeds, source)
        made = tuple(image.shape[-2:])
        if image.dim() != 4 or image.shape[:2] != (1, 3) or made != tuple(size):
            raise SampleFailed(f"method {self.method.name} ({self.method.origin}) returned an image of shape "
                               f"{tuple(image.shape)} for a {size[0]}x{size[1]} sample; a sample must be "
                               f"(1, 3, {size[0]}, {size[1]})")
        outputs["image"] = to_image(image)
        typed = sample_record(record, size)
        return outputs, {"prompt": prompt, **typed.as_dict(), "item": sample.item, "seeds": asdict(seeds)}

    def summarise(self, records: list[dict], out: Path) -> dict:
        def per_sample(record: dict) -> dict:
            typed = SampleRecord.from_dict(record)
            stage1, stage2 = typed.stage1 or StageOne(), typed.stage2 or StageTwo()
            return {"index": record["index"], "status": "ok", "item": record.get("item"), "size": record["size"],
                    "rank": record.get("rank", 0),
                    "seconds": record["seconds"], "peak_memory_mib": record["peak_memory_mib"],
                    "stage1_size": list(stage1.size) if stage1.size else None, "stage1_unet_calls": stage1.unet_calls,
                    "stage2_denoiser_calls": stage2.denoiser_calls,
                    "stage2_tile_evaluations": stage2.tile_evaluations,
                    "stage2_tiles_per_step": stage2.tiles_per_step,
                    "cropped": typed.cropped,
                    "image": f"samples/{record['index']:05d}.image.png"}

        def not_made(record: dict) -> dict:
            """An out-of-memory or failed sample: no image, so every figure of a made one is None."""
            return {**dict.fromkeys(IMAGE_FIGURES), "index": record["index"], "status": record["status"],
                    "item": self.sample(record["index"]).item, "size": record["size"], "seconds": record["seconds"],
                    "peak_memory_mib": record["peak_memory_mib"], "error": record.get("error")}

        rows = [per_sample(r) if finished(r) else not_made(r) for r in records]
        done = [r for r in rows if r["status"] == "ok"]

        def mean(key):
            return float(np.mean([r[key] for r in done])) if done else None

        return {
            "seconds_per_image": mean("seconds"),
            "warm_up_seconds": self.warm_up_seconds,
            "stage1_unet_calls_per_image": mean("stage1_unet_calls"),
            "stage2_denoiser_calls_per_image": mean("stage2_denoiser_calls"),
            "stage2_tile_evaluations_per_image": mean("stage2_tile_evaluations"),
            "per_image": rows,
        }
