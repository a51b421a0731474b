"""Make tests/fixtures/scalecrafter/: the ScaleCrafter release's own sampling loop on our tiny models.

    git --git-dir=GIT archive HEAD -- '*.py' configs assets/dilate_settings assets/ndcfg_dilate_settings \\
        | tar -x -C /tmp/scalecrafter
    python scripts/scalecrafter-reference.py /tmp/scalecrafter --commit "$(git --git-dir=GIT rev-parse HEAD)"

GIT is a clone of YingqingHe/ScaleCrafter. The release's code is imported from that checkout,
never copied here: its ``text2image.pipeline_processor`` (the denoising loop, with its own
``ReDilateConvProcessor``) runs on a diffusers pipeline of our tiny SD 2.1, with its released
configs and settings files, from the same initial noise, prompt embeddings, steps and guidance
as our sampler. We record the latent after each step and the final image (uint8);
``tests/test_scalecrafter_release.py`` runs our sampler and compares. FreeU is left out: the
release's FreeU acts only on 1280- and 640-channel features, which the tiny UNet does not have.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import types
from pathlib import Path

import diffusers
import numpy as np
import torch
import yaml
from diffusers import DDIMScheduler, StableDiffusionPipeline

from baselines.highres.scalecrafter import RELEASE, steps_of
from baselines.models import load_text_to_image
from baselines.settings import DEFAULT_GUIDANCE, Seeds
from baselines.stage1 import start

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "scalecrafter"
SEEDS, PROMPT, STEPS = Seeds(3, 4, 5), "a lighthouse", 5
# name: (the release's config, our settings row (height, width), size run in px, DDIM eta)
CASES = {"2048x2048": ("configs/sd2.1_2048x2048.yaml", (2048, 2048), (192, 192), 0.0),
         "2048x1024": ("configs/sd2.1_2048x1024.yaml", (1024, 2048), (128, 256), 0.0),
         "2048x2048-eta1": ("configs/sd2.1_2048x2048.yaml", (2048, 2048), (128, 128), 1.0)}
SHIMS = ["omegaconf: an empty stand-in (only main() reads configs through it; we read them with PyYAML)",
         "sync_tiled_decode: an empty stand-in (VAE tiling, unused; it needs einops)",
         "diffusers.models.unet_2d_condition: aliased to diffusers.models.unets.unet_2d_condition "
         "(free_lunch_utils imports its logger from the diffusers 0.20 path)"]


def import_release(checkout: Path) -> types.ModuleType:
    """The release's text2image module on diffusers 0.42, through the stand-ins of :data:`SHIMS`."""
    omegaconf = types.ModuleType("omegaconf")
    omegaconf.OmegaConf = None
    tiled = types.ModuleType("sync_tiled_decode")
    tiled.apply_sync_tiled_decode = tiled.apply_tiled_processors = None
    from diffusers.models.unets import unet_2d_condition

    sys.modules.update({"omegaconf": omegaconf, "sync_tiled_decode": tiled,
                        "diffusers.models.unet_2d_condition": unet_2d_condition})
    sys.path.insert(0, str(checkout))
    import text2image

    return text2image


def run_case(release: types.ModuleType, checkout: Path, config_path: str, size: tuple[int, int],
             eta: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """The release's loop at ``size``: per-step latents, the uint8 image, and the settings it ran with."""
    config = yaml.safe_load((checkout / config_path).read_text())
    with contextlib.redirect_stdout(io.StringIO()):  # read_dilate_settings prints every line
        dilate = release.read_dilate_settings(checkout / config["dilate_settings"])
        ndcfg = release.read_dilate_settings(checkout / config["ndcfg_dilate_settings"])
    taus = {"dilate_tau": steps_of(config["dilate_tau"], STEPS), "ndcfg_tau": steps_of(config["ndcfg_tau"], STEPS)}
    models = load_text_to_image("tiny", torch.device("cpu"))
    pipe = StableDiffusionPipeline(models.vae, models.text_encoder, None, models.unet,
                                   DDIMScheduler.from_config(models.scheduler_config), None, None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    negative, positive = models.encode_text(["", PROMPT]).chunk(2)
    generator = SEEDS.generator("noise")  # our sampler's: the initial latent, then DDIM's variance noise
    _, latent = start(models, (size[0] // 8, size[1] // 8), STEPS, generator)
    forward = release.pipeline_processor(pipe, inflate_tau=0, dilate_settings=dilate, inflate_settings=[],
                                         ndcfg_dilate_settings=ndcfg, transform=None,
                                         progressive=config["progressive"], **taus)
    latents = []
    image = forward(prompt_embeds=positive, negative_prompt_embeds=negative, height=size[0], width=size[1],
                    num_inference_steps=STEPS, guidance_scale=DEFAULT_GUIDANCE, eta=eta, generator=generator,
                    latents=latent, output_type="np", callback=lambda i, t, x: latents.append(x.clone())).images
    settings = {"config": config_path, "dilate_settings": config["dilate_settings"],
                "ndcfg_dilate_settings": config["ndcfg_dilate_settings"], "progressive": config["progressive"],
                "release_taus": {"dilate_tau": config["dilate_tau"], "ndcfg_tau": config["ndcfg_tau"]}, **taus}
    return torch.cat(latents).numpy(), (image[0] * 255).round().astype(np.uint8), settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="an extracted snapshot of YingqingHe/ScaleCrafter")
    parser.add_argument("--commit", required=True, help="the snapshot's commit")
    args = parser.parse_args()
    release = import_release(args.checkout)
    torch.set_num_threads(1)
    arrays, cases = {}, {}
    for name, (config, row, size, eta) in CASES.items():
        latents, image, settings = run_case(release, args.checkout, config, size, eta)
        arrays[f"{name}.latents"], arrays[f"{name}.image"] = latents, image
        cases[name] = {"row": list(row), "size": list(size), "eta": eta, **settings}
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "release.npz", **arrays)
    record = {"repo": RELEASE, "commit": args.commit, "file": "text2image.py", "function": "pipeline_processor",
              "checkout": "git --git-dir=GIT archive COMMIT -- '*.py' configs assets/dilate_settings "
                          "assets/ndcfg_dilate_settings | tar -x -C CHECKOUT",
              "command": "python scripts/scalecrafter-reference.py CHECKOUT --commit COMMIT",
              "diffusers": diffusers.__version__, "torch": torch.__version__, "shims": SHIMS,
              "models": "baselines.models.load_text_to_image('tiny', cpu)", "prompt": PROMPT,
              "seeds": {"noise": SEEDS.noise, "sr_noise": SEEDS.sr_noise, "offsets": SEEDS.offsets},
              "steps": STEPS, "guidance": DEFAULT_GUIDANCE,
              "initial_latent": "baselines.stage1.start with Seeds.generator('noise'); that generator continued "
                                "is DDIM's generator (eta > 0), passed to forward(generator=...); the release's "
                                "main() passes None, so its variance noise comes from torch's global generator "
                                "after set_seed",
              "freeu": "off (the release's FreeU scales only 1280- and 640-channel features; tiny has none)",
              "arrays": "release.npz: CASE.latents (steps, 4, h, w) float32 after each step; CASE.image (H, W, 3) "
                        "uint8, round(255 x image in [0, 1])",
              "cases": cases}
    (OUT / "release.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
