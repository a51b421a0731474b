"""Make tests/fixtures/scalecrafter/: the ScaleCrafter release's own sampling loop on our tiny models.

    git --git-dir=GIT archive HEAD -- '*.py' configs assets/dilate_settings assets/ndcfg_dilate_settings \\
        assets/disperse_settings | tar -x -C /tmp/scalecrafter
    python scripts/scalecrafter-reference.py /tmp/scalecrafter --commit "$(git --git-dir=GIT rev-parse HEAD)"
    python scripts/scalecrafter-reference.py /tmp/scalecrafter --commit "$(git ...)" --model sdxl

GIT is a clone of YingqingHe/ScaleCrafter. The release's code is imported from that checkout,
never copied here: its ``pipeline_processor`` (the denoising loop, with its own
``ReDilateConvProcessor``) of ``text2image.py`` (SD 2.1, ``release.*``) or ``text2image_xl.py``
(SDXL, ``release-sdxl.*``) runs on a diffusers pipeline of our tiny model, with its released
configs and settings files, from the same initial noise, conditioning, steps and guidance as our
sampler. We record the latent after each step and the final image (uint8); the tests run our
sampler and compare. For SDXL the fixture also holds every SDXL config's settings as the
release's own readers parse them, so the test can hold our settings rows to them. FreeU is left
out: the release's FreeU acts only on 1280- and 640-channel features, which the tiny UNets lack.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import sys
import types
from pathlib import Path

import diffusers
import numpy as np
import torch
import yaml
from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

from baselines.highres.scalecrafter import RELEASE, steps_of
from baselines.models import load_text_to_image
from baselines.settings import DEFAULT_GUIDANCE, Seeds
from baselines.stage1 import start

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "scalecrafter"
SEEDS, PROMPT, STEPS = Seeds(3, 4, 5), "a lighthouse", 5
# per base model: the release's script, the fixture's name and its cases,
# name: (the release's config, our settings row (height, width), size run in px, DDIM eta)
MODELS = {
    "sd21": ("text2image", "release", {
        "2048x2048": ("configs/sd2.1_2048x2048.yaml", (2048, 2048), (192, 192), 0.0),
        "2048x1024": ("configs/sd2.1_2048x1024.yaml", (1024, 2048), (128, 256), 0.0),
        "2048x2048-eta1": ("configs/sd2.1_2048x2048.yaml", (2048, 2048), (128, 128), 1.0)}),
    "sdxl": ("text2image_xl", "release-sdxl", {
        "2048x2048": ("configs/sdxl_2048x2048.yaml", (2048, 2048), (128, 128), 0.0),
        "4096x2048": ("configs/sdxl_4096x2048.yaml", (2048, 4096), (128, 256), 0.0),
        "4096x4096-eta1": ("configs/sdxl_4096x4096.yaml", (4096, 4096), (192, 128), 1.0)}),
}
SHIMS = ["omegaconf: an empty stand-in (only main() reads configs through it; we read them with PyYAML)",
         "sync_tiled_decode: an empty stand-in (VAE tiling, unused; it needs einops)",
         "diffusers.models.unet_2d_condition: aliased to diffusers.models.unets.unet_2d_condition "
         "(free_lunch_utils imports its logger from the diffusers 0.20 path)"]
SDXL_SHIMS = ["StableDiffusionXLPipeline._get_add_time_ids: given text_encoder_projection_dim = text_encoder_2's "
              "projection_dim, which diffusers 0.20 read itself and 0.42 takes as an argument the release does not "
              "pass (the time ids are unchanged: (H, W, 0, 0, H, W))"]


def import_release(checkout: Path, module: str) -> types.ModuleType:
    """The release's ``module`` on diffusers 0.42, through the stand-ins of :data:`SHIMS`."""
    omegaconf = types.ModuleType("omegaconf")
    omegaconf.OmegaConf = None
    tiled = types.ModuleType("sync_tiled_decode")
    tiled.apply_sync_tiled_decode = tiled.apply_tiled_processors = None
    from diffusers.models.unets import unet_2d_condition

    sys.modules.update({"omegaconf": omegaconf, "sync_tiled_decode": tiled,
                        "diffusers.models.unet_2d_condition": unet_2d_condition})
    sys.path.insert(0, str(checkout))
    return __import__(module)


def release_pipeline(models):
    """diffusers' pipeline of the base model on our tiny modules, as the release's script builds it (DDIM)."""
    scheduler = DDIMScheduler.from_config(models.scheduler_config)
    if models.text_encoder_2 is None:
        return StableDiffusionPipeline(models.vae, models.text_encoder, None, models.unet, scheduler, None, None,
                                       requires_safety_checker=False)
    pipe = StableDiffusionXLPipeline(vae=models.vae, text_encoder=models.text_encoder,
                                     text_encoder_2=models.text_encoder_2, tokenizer=None, tokenizer_2=None,
                                     unet=models.unet, scheduler=scheduler, add_watermarker=False)
    pipe._get_add_time_ids = functools.partial(  # SDXL_SHIMS
        pipe._get_add_time_ids, text_encoder_projection_dim=models.text_encoder_2.config.projection_dim)
    return pipe


def read_settings(release: types.ModuleType, checkout: Path, path) -> dict:
    """A settings file as the release's ``read_dilate_settings`` parses it (none: empty, as its main() has it)."""
    if path is None:
        return {}
    with contextlib.redirect_stdout(io.StringIO()):  # read_dilate_settings prints every line
        return release.read_dilate_settings(checkout / path)


def run_case(release: types.ModuleType, checkout: Path, model: str, config_path: str, size: tuple[int, int],
             eta: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """The release's loop at ``size``: per-step latents, the uint8 image, and the settings it ran with."""
    config = yaml.safe_load((checkout / config_path).read_text())
    dilate = read_settings(release, checkout, config["dilate_settings"])
    ndcfg = read_settings(release, checkout, config["ndcfg_dilate_settings"])
    taus = {"dilate_tau": steps_of(config["dilate_tau"], STEPS), "ndcfg_tau": steps_of(config["ndcfg_tau"], STEPS)}
    models = load_text_to_image("tiny", torch.device("cpu"), model=model)
    pipe = release_pipeline(models)
    pipe.set_progress_bar_config(disable=True)
    negative, positive = models.guidance_pair(PROMPT, size)
    generator = SEEDS.generator("noise")  # our sampler's: the initial latent, then DDIM's variance noise
    _, latent = start(models, (size[0] // 8, size[1] // 8), STEPS, generator)
    forward = release.pipeline_processor(pipe, inflate_tau=0, dilate_settings=dilate, inflate_settings=[],
                                         ndcfg_dilate_settings=ndcfg, transform=None,
                                         progressive=config["progressive"], **taus)
    pooled = ({"pooled_prompt_embeds": positive.added["text_embeds"],
               "negative_pooled_prompt_embeds": negative.added["text_embeds"]} if positive.added else {})
    latents = []
    image = forward(prompt_embeds=positive.hidden, negative_prompt_embeds=negative.hidden, **pooled, height=size[0],
                    width=size[1], num_inference_steps=STEPS, guidance_scale=DEFAULT_GUIDANCE, eta=eta,
                    generator=generator, latents=latent, output_type="np",
                    callback=lambda i, t, x: latents.append(x.clone())).images
    settings = {"config": config_path, "dilate_settings": config["dilate_settings"],
                "ndcfg_dilate_settings": config["ndcfg_dilate_settings"], "progressive": config["progressive"],
                "release_taus": {"dilate_tau": config["dilate_tau"], "ndcfg_tau": config["ndcfg_tau"]}, **taus}
    return torch.cat(latents).numpy(), (image[0] * 255).round().astype(np.uint8), settings


def released_configs(release: types.ModuleType, checkout: Path, prefix: str) -> dict:
    """Every config named ``prefix*.yaml`` with the settings files it names, parsed by the release's readers."""
    configs = {}
    for path in sorted((checkout / "configs").glob(f"{prefix}*.yaml")):
        config = yaml.safe_load(path.read_text())
        disperse = config.get("disperse_settings")
        configs[f"configs/{path.name}"] = {
            "pixel_size": [config.get("pixel_height"), config.get("pixel_width")],
            "latent_size": [config["latent_height"], config["latent_width"]], "progressive": config["progressive"],
            **{tau: config[tau] for tau in ("dilate_tau", "ndcfg_tau", "inflate_tau")},
            "dilate": read_settings(release, checkout, config["dilate_settings"]),
            "ndcfg": read_settings(release, checkout, config["ndcfg_dilate_settings"]),
            "disperse": release.read_module_list(checkout / disperse) if disperse else []}
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="an extracted snapshot of YingqingHe/ScaleCrafter")
    parser.add_argument("--commit", required=True, help="the snapshot's commit")
    parser.add_argument("--model", choices=sorted(MODELS), default="sd21", help="the base model (default sd21)")
    args = parser.parse_args()
    module, name, cases_run = MODELS[args.model]
    release = import_release(args.checkout, module)
    torch.set_num_threads(1)
    arrays, cases = {}, {}
    for case, (config, row, size, eta) in cases_run.items():
        latents, image, settings = run_case(release, args.checkout, args.model, config, size, eta)
        arrays[f"{case}.latents"], arrays[f"{case}.image"] = latents, image
        cases[case] = {"row": list(row), "size": list(size), "eta": eta, **settings}
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / f"{name}.npz", **arrays)
    sdxl = args.model == "sdxl"
    command = "python scripts/scalecrafter-reference.py CHECKOUT --commit COMMIT" + " --model sdxl" * sdxl
    record = {"repo": RELEASE, "commit": args.commit, "file": f"{module}.py", "function": "pipeline_processor",
              "checkout": "git --git-dir=GIT archive COMMIT -- '*.py' configs assets/dilate_settings "
                          "assets/ndcfg_dilate_settings" + " assets/disperse_settings" * sdxl + " | tar -x -C CHECKOUT",
              "command": command, "diffusers": diffusers.__version__, "torch": torch.__version__,
              "shims": SHIMS + SDXL_SHIMS * sdxl,
              "models": f"baselines.models.load_text_to_image('tiny', cpu{', model=' + repr(args.model) if sdxl else ''})",
              "prompt": PROMPT, "seeds": {"noise": SEEDS.noise, "sr_noise": SEEDS.sr_noise, "offsets": SEEDS.offsets},
              "steps": STEPS, "guidance": DEFAULT_GUIDANCE,
              "initial_latent": "baselines.stage1.start with Seeds.generator('noise'); that generator continued "
                                "is DDIM's generator (eta > 0), passed to forward(generator=...); the release's "
                                "main() passes None, so its variance noise comes from torch's global generator "
                                "after set_seed",
              "freeu": "off (the release's FreeU scales only 1280- and 640-channel features; tiny has none)",
              "arrays": f"{name}.npz: CASE.latents (steps, 4, h, w) float32 after each step; CASE.image (H, W, 3) "
                        "uint8, round(255 x image in [0, 1])",
              "cases": cases}
    if sdxl:
        record["conditioning"] = ("models.guidance_pair: both encoders' penultimate states, the pooled text_embeds, "
                                  "zeros for the unconditional branch; the release's forward makes the time ids "
                                  "from height and width")
        record["configs"] = released_configs(release, args.checkout, "sdxl_")
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
