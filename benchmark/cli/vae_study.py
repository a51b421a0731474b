"""``vae-study``: every VAE tiling mode against the untiled VAE."""

from __future__ import annotations

import argparse

from baselines.vae_tiling import VaeTiling
from benchmark import api
from benchmark.cli.options import add_include, add_device, add_model_profile, add_runs, size
from benchmark.reporting.vae_tables import render_vae_study

NAME = "vae-study"
HELP = "every --vae-tiling mode against the untiled VAE: PSNR, seams, time, memory"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = (
        "Encode and decode one synthetic image of --size with the profile's x4 upscaler VAE (stage II's) untiled "
        "and in every tiling mode; record PSNR against the untiled output (decode alone and round trip), the seam "
        "score on the VAE's tile grid, seconds and peak memory, in "
        "RUNS/vae-tiling/<profile>-<size>-t<tile>-h<halo>/results.json, then print the table. `report` puts it in "
        "the profile's report.")
    add_model_profile(parser)
    parser.add_argument("--size", type=size, default=(2048, 2048), help="HxW in px (default: 2048x2048)")
    parser.add_argument("--vae-tile", type=int, default=VaeTiling.tile, help="tile side in latent px (default: %(default)s)")
    parser.add_argument("--vae-halo", type=int, default=VaeTiling.halo, help="halo in latent px (default: %(default)s)")
    add_device(parser)
    add_runs(parser, what="where the study goes")
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    finished = api.vae_study(args.profile, args.size, args.vae_tile, args.vae_halo, args.device, args.runs,
                             args.include)
    print(render_vae_study(finished.results))
    print(f"-> {finished.out / 'results.json'}")
    return 0
