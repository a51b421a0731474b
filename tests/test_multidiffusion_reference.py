"""``md`` against the authors' own ``panorama.py`` (omerbt/MultiDiffusion), and the identity it rests on.

MultiDiffusion averages the views' stepped latents (``value / count``); we average their noise
predictions and step once. The fixture (tests/fixtures/multidiffusion/: ``make_fixture.py`` imports
the release from a checkout, release.json names the commit, the stand-ins and the command) is the
release's final latent on the tiny SD 2.1 models with a 2 x 3 grid of 64-latent views at stride 8.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler
from safetensors.torch import load_file

from helpers import CPU, one_thread

from baselines.models import load_text_to_image
from baselines.base_models.sd21 import SD21_SCHEDULER
from baselines.stage1 import denoise, multidiffusion_tiling

FIXTURE = Path(__file__).parent / "fixtures" / "multidiffusion"
RECORD = json.loads((FIXTURE / "release.json").read_text())


def test_md_ends_on_the_latent_of_the_releases_own_panorama_loop():
    expected = load_file(FIXTURE / "release_latent.safetensors")["latent"]
    with one_thread():
        models = load_text_to_image("tiny", CPU)
        negative, positive = models.encode_text(["", RECORD["prompt"]]).chunk(2)
        ours, tiled = denoise(models, negative, positive, tuple(expected.shape[-2:]), steps=RECORD["steps"],
                              guidance=RECORD["guidance"], tiling=multidiffusion_tiling(),
                              generator=torch.Generator().manual_seed(RECORD["seed"]))
    assert tiled.tile_evaluations == RECORD["views"] * RECORD["steps"]
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)


def _mean_of_steps_and_step_of_mean(config: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """At every timestep of 50 (the last included), the mean of 3 views' DDIM steps and the step of their mean."""
    scheduler = DDIMScheduler.from_config(config)
    scheduler.set_timesteps(50)
    generator = torch.Generator().manual_seed(0)
    pairs = []
    for t in scheduler.timesteps:
        x, eps = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(3, 4, 8, 8, generator=generator) * 3
        steps = torch.stack([scheduler.step(e[None], t, x).prev_sample for e in eps]).mean(0)
        pairs.append((steps, scheduler.step(eps.mean(0, keepdim=True), t, x).prev_sample))
    return pairs


@pytest.mark.parametrize("alpha_to_one", [False, True])
def test_averaging_ddim_steps_is_stepping_the_averaged_prediction_under_sd21s_settings(alpha_to_one):
    for averaged_steps, step_of_average in _mean_of_steps_and_step_of_mean({**SD21_SCHEDULER,
                                                                            "set_alpha_to_one": alpha_to_one}):
        torch.testing.assert_close(averaged_steps, step_of_average, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("change", [{"clip_sample": True}, {"thresholding": True}])
def test_a_clipping_or_thresholding_ddim_breaks_the_identity_and_md_refuses_it(change):
    pairs = _mean_of_steps_and_step_of_mean({**SD21_SCHEDULER, **change})
    assert any(not torch.allclose(a, b, atol=1e-3) for a, b in pairs)
    models = load_text_to_image("tiny", CPU)
    models = replace(models, scheduler_config={**models.scheduler_config, **change})
    negative, positive = models.encode_text(["", "a cat"]).chunk(2)
    with pytest.raises(ValueError, match="clips nor thresholds"):
        denoise(models, negative, positive, (72, 80), steps=1, tiling=multidiffusion_tiling())
