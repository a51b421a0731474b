"""A method on a model profile as a runner job: one image per sample, saved as PNG.

Samples are (prompt, size) pairs, cycled when more samples than pairs are asked for; each
sample has its own seeds (stage I noise, stage II noise, tile offsets), derived from the
run seed and the sample index, so a run replays exactly and resumes sample by sample.
``fstd`` (stage II alone) makes its own low-resolution inputs: the procedural images of
``datasets_build`` at the requested size, downscaled by the backbone's factor (as
MM-CelebA-HQ's 1024² → 256²), and reports PSNR (Y) against that high-resolution image.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from baselines.methods import MIN_SIDE, AnySizePipeline, Seeds
from benchmark.runner import derived_seed
from datasets_build.images import downscale
from datasets_build.sizes import Size

#: The built-in prompt set: several ratios, wide to tall, so every method's size handling shows.
DEFAULT_SAMPLES = (
    ("a lighthouse on a rocky coast at sunset, oil painting", (512, 512)),
    ("a red fox in a snowy birch forest, photograph", (768, 1024)),
    ("a tall waterfall between green cliffs, morning mist", (1024, 256)),
)


def to_image(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [-1, 1] → 8-bit RGB, as diffusers' image processor rounds it."""
    array = ((image[0].float().clamp(-1, 1) / 2 + 0.5) * 255).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())


def to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB → (1, 3, H, W) in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def plan_samples(prompt: str | None, size: tuple[int, int] | None) -> tuple[tuple[str, tuple[int, int]], ...]:
    """The (prompt, size) pairs of a run: the built-in set, with the prompt or size given replacing its own."""
    if prompt is not None and size is not None:
        return ((prompt, size),)
    return tuple((prompt or default_prompt, size or default_size)
                 for default_prompt, default_size in DEFAULT_SAMPLES)


@dataclass
class ModelJob:
    pipeline: AnySizePipeline
    samples: tuple[tuple[str, tuple[int, int]], ...] = DEFAULT_SAMPLES
    seed: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def stage_two_alone(self) -> bool:
        return self.pipeline.method.base is None

    def parameters(self) -> dict:
        return {**self.pipeline.describe(), "seed": self.seed, "device_type": self.device.type,
                "samples_plan": [{"prompt": None if self.stage_two_alone else prompt, "size": list(size)}
                                 for prompt, size in self.samples],
                "inputs": ("procedural images (datasets_build synthetic), downscaled by the SR factor"
                           if self.stage_two_alone else "prompts")}

    def warm_up(self):
        source = torch.zeros((1, 3, 16, 16), device=self.device) if self.stage_two_alone else None
        self.pipeline(self.samples[0][0], (MIN_SIDE, MIN_SIDE), Seeds(0, 0, 0), source)

    def run_sample(self, index: int):
        prompt, size = self.samples[index % len(self.samples)]
        seeds = Seeds(*(derived_seed(self.seed, index, stream) for stream in ("noise", "sr_noise", "offsets")))
        outputs = {}
        source = None
        if self.stage_two_alone:
            high, prompt = self.high_resolution(index, size)
            low = downscale(high, self.pipeline.backbone.latent_factor)
            source = to_tensor(low).to(self.device)
            outputs.update(hr=high, lr=low)
        image, record = self.pipeline(prompt, size, seeds, source)
        outputs["image"] = to_image(image)
        record["seeds"] = asdict(seeds)
        return outputs, record

    def high_resolution(self, index: int, size: tuple[int, int]) -> tuple[Image.Image, str]:
        """fstd's reference image and its caption, a pure function of (seed, index, size)."""
        from datasets_build.sources.synthetic import draw

        return draw(Size(*size), random.Random(derived_seed(self.seed, index, "image")))

    def summarise(self, records: list[dict], out: Path) -> dict:
        def per_sample(record: dict) -> dict:
            stage1, stage2 = record.get("stage1", {}), record.get("stage2", {})
            return {"index": record["index"], "size": record["size"], "seconds": record["seconds"],
                    "peak_memory_mib": record["peak_memory_mib"],
                    "stage1_size": stage1.get("size"), "stage1_unet_calls": stage1.get("unet_calls", 0),
                    "stage2_denoiser_calls": stage2.get("denoiser_calls", 0),
                    "stage2_tile_evaluations": stage2.get("tile_evaluations", 0),
                    "stage2_tiles_per_step": stage2.get("tile_plan", {}).get("tiles_per_step"),
                    "cropped": record["output"]["cropped"],
                    "image": f"samples/{record['index']:05d}.image.png"}

        rows = [per_sample(r) for r in records]
        if self.stage_two_alone:  # measured here, outside the timed sample
            from benchmark.metrics import psnr_y

            for row in rows:
                stem = out / "samples" / f"{row['index']:05d}"
                with Image.open(f"{stem}.hr.png") as high, Image.open(f"{stem}.image.png") as image:
                    row["psnr_y"] = psnr_y(high, image)
        summary = {
            "seconds_per_image": float(np.mean([r["seconds"] for r in rows])),
            "stage1_unet_calls_per_image": float(np.mean([r["stage1_unet_calls"] for r in rows])),
            "stage2_denoiser_calls_per_image": float(np.mean([r["stage2_denoiser_calls"] for r in rows])),
            "stage2_tile_evaluations_per_image": float(np.mean([r["stage2_tile_evaluations"] for r in rows])),
            "per_image": rows,
        }
        if self.stage_two_alone:
            summary["psnr_y"] = float(np.mean([r["psnr_y"] for r in rows]))
        return summary
