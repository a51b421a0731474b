"""Seconds and peak memory of a tiled VAE decode alone (stage II's x4 VAE, or a base model's), on a CPU.

    python scripts/vae-decode-memory.py --profile paper-arch --latent 256 --sample-tiles 16
    python scripts/vae-decode-memory.py --vae sdxl --profile paper-arch --latent 256
    python scripts/vae-decode-memory.py --profile paper-arch --latent 160 --sample-batch 1

A random latent of ``--latent`` px a side (the x4 VAE's output is 4 times that, a ×8 VAE's 8) is decoded with
``--vae-tiling sync`` at its default tiles; the peak is the process's resident high-water mark
above what it held once the VAE was loaded (benchmark.runs.measure's, reset after the load). The statistics batch, up to
``--sample-tiles`` windows decoded as one (or ``--sample-batch`` at a time, one pass per GroupNorm), is what a
tiled decode holds most of (docs/memory.md, "VAE tiling"); this separates it from the rest of a run.
"""

from __future__ import annotations

import argparse
import json

import torch

from baselines.base_models import get_base_model
from baselines.models import load_upscaler, random_stage1_vae
from baselines.vae_tiling import VaeTiling, decode
from benchmark.runs.measure import measured, status_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vae", default="x4", help="x4 (stage II's), or a base model's name: sd21, sdxl, flux "
                        "(random weights in its config; default: x4)")
    parser.add_argument("--profile", default="tiny", help="tiny or paper-arch (default: tiny)")
    parser.add_argument("--latent", type=int, default=256, help="latent side in px (default: 256, 1024² out)")
    parser.add_argument("--sample-tiles", type=int, default=VaeTiling.sample_tiles,
                        help="windows the shared GroupNorm statistics are gathered on (default: %(default)s)")
    parser.add_argument("--sample-batch", type=int, default=None,
                        help="windows of the statistics batch run at once (default: all, halved while they run out "
                        "of memory)")
    args = parser.parse_args()

    cpu = torch.device("cpu")
    if args.vae == "x4":
        vae = load_upscaler(args.profile, cpu).vae
    else:
        vae = random_stage1_vae(get_base_model(args.vae), args.profile, cpu, torch.float32)
    loaded = status_bytes("VmRSS") / 2**20
    latent = torch.randn((1, vae.config.latent_channels, args.latent, args.latent),
                         generator=torch.Generator().manual_seed(0))
    with measured(cpu) as measurement:  # the high-water mark restarts here
        image = decode(vae, latent, VaeTiling("sync", sample_tiles=args.sample_tiles, sample_batch=args.sample_batch))
    print(json.dumps({"vae": args.vae, "profile": args.profile, "latent": args.latent, "image": list(image.shape[-2:]),
                      "sample_tiles": args.sample_tiles, "sample_batch": args.sample_batch, "threads": torch.get_num_threads(),
                      "seconds": round(measurement.seconds, 1), "weights_rss_mib": round(loaded),
                      "peak_above_weights_mib": round(measurement.peak_memory_mib - loaded)}))

if __name__ == "__main__":
    main()
