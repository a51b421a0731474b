"""The VAE tiling study: every ``--vae-tiling`` mode against the untiled VAE, at a size where untiled fits.

One image (a synthetic picture of the requested size, see
:func:`datasets_build.sources.synthetic.draw`) goes through the profile's x4 upscaler VAE,
stage II's VAE: encoded (posterior mean) and decoded untiled, which is the reference, then
through each mode. Per mode: PSNR of the decode alone (the untiled latent decoded tiled)
and of the round trip (encode and decode tiled) against the reference, the seam score of
the round trip on the VAE's tile grid, seconds and peak memory of the round trip. The
default mode is chosen from this table (docs/memory.md, "VAE tiling").
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import torch

from baselines.arad.buckets import to_tensor
from baselines.bicubic import Bicubic
from baselines.models import load_upscaler
from baselines.profiles import get_profile
from baselines.vae_tiling import VAE_TILING_MODES, VaeTiling, decode, encode_moments, vae_factor
from benchmark.metrics.seams import seam_score
from benchmark.runs.measure import measured
from benchmark.runs.records import environment, write_json
from datasets_build.sizes import Size
from datasets_build.sources.synthetic import draw

MODES = tuple(mode for mode in VAE_TILING_MODES if mode != "auto")


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of two images in [-1, 1] (peak-to-peak 2)."""
    mse = float(((image.clamp(-1, 1) - reference.clamp(-1, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4 / mse)


def study_image(size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    picture, _caption = draw(Size(*size), random.Random(f"vae-study:{seed}"))
    return to_tensor(picture)[None]


@torch.no_grad()
def vae_study(profile: str, size: tuple[int, int], device: torch.device, tiling: VaeTiling, out: Path) -> dict:
    """Run the study and write ``out/results.json``; returns it."""
    vae = load_upscaler(profile, device).vae
    factor = vae_factor(vae)
    if size[0] % factor or size[1] % factor:
        raise ValueError(f"the study's size must be a multiple of the VAE factor {factor}, not {size[0]}x{size[1]}")
    image = study_image(size).to(device)
    region = Bicubic(image, size)
    if tiling.effective((size[0] // factor, size[1] // factor)) == "off":
        raise ValueError(f"one VAE tile ({tiling.tile} latent px) covers {size[0]}x{size[1]}: "
                         "choose a larger size or a smaller --vae-tile")

    rows = []
    reference_latent = None
    for mode in MODES:
        config = replace(tiling, mode=mode)
        with measured(device) as cost:
            latent = encode_moments(vae, region, size, config).chunk(2, dim=1)[0]
            round_trip = decode(vae, latent, config)
        if mode == "off":
            reference_latent, reference = latent, round_trip
        decoded = decode(vae, reference_latent, config)
        rows.append({"mode": mode, "psnr_decode_db": psnr(decoded, reference),
                     "psnr_round_trip_db": psnr(round_trip, reference),
                     "seam_score": seam_score(round_trip[0], tiling.tile * factor),
                     "seconds": cost.seconds, "peak_memory_mib": cost.peak_memory_mib,
                     "memory_kind": cost.memory_kind})
    results = {"kind": "vae-tiling", "profile": profile, "size": list(size), "vae": "x4 upscaler VAE (stage II)",
               "weights": "released" if get_profile(profile).published else "random (architecture only)",
               "tiling": {k: v for k, v in tiling.as_record().items() if k != "mode"}, "latent_factor": factor,
               "reference": "off (one VAE call)", "rows": rows,
               "environment": environment(device)}
    write_json(out / "results.json", results)
    return results
