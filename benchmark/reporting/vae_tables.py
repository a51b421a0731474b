"""The VAE tiling study (``python -m benchmark vae-study``) as a table in the profile's report."""

from __future__ import annotations

import math

from benchmark.reporting.provenance import commits, dates, devices

KIND = "vae-tiling"


def _db(value: float) -> str:
    return "identical" if math.isinf(value) else f"{value:.2f}"


def render_vae_study(results: dict) -> str:
    """One study: how it was made, then a row per mode."""
    size, tiling = results["size"], results["tiling"]
    lines = [f"### VAE tiling at {size[0]}×{size[1]} ({results['vae']})", "",
             f"- profile: {results['profile']}, weights: {results['weights']} (not image quality)",
             f"- tiles: {tiling['tile']} latent px ({tiling['tile'] * results['latent_factor']} px), halo "
             f"{tiling['halo']} latent px; sync gathers its GroupNorm statistics on {tiling['sample_tiles']} "
             "windows spread over the image; diffusers: `enable_tiling()` at the same tile size",
             f"- reference: {results['reference']}; PSNR of the decode alone (the untiled latent) and of "
             "encode + decode; seam score of encode + decode on the VAE's tile grid (1.0: no seam)",
             f"- device: {devices([results])}; commit: {commits([results])}; date: {dates([results])}",
             f"- command: `python -m benchmark vae-study --profile {results['profile']} --size {size[0]}x{size[1]} "
             f"--vae-tile {tiling['tile']} --vae-halo {tiling['halo']}`", "",
             "| mode | PSNR decode (dB) | PSNR round trip (dB) | seam score | s | peak memory (MiB) |",
             "|---|---|---|---|---|---|"]
    for row in results["rows"]:
        lines.append(f"| {row['mode']} | {_db(row['psnr_decode_db'])} | {_db(row['psnr_round_trip_db'])} | "
                     f"{row['seam_score']:.3f} | {row['seconds']:.2f} | {row['peak_memory_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def vae_tables(results: list[dict], profile: str) -> str:
    """Every VAE tiling study of ``profile``, or an empty string."""
    studies = [r for r in results if r.get("kind") == KIND and r.get("profile") == profile]
    if not studies:
        return ""
    return "## VAE tiling (`--vae-tiling`)\n\n" + "\n".join(render_vae_study(r) for r in studies)
