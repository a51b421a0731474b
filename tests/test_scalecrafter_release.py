"""ScaleCrafter against its release: our loop against the authors' ``pipeline_processor``, and the
``scalecrafter-release`` variant (DDIM eta 1, FreeU) against the default.

The reference outputs in tests/fixtures/scalecrafter/ were made outside the package by
scripts/scalecrafter-reference.py, from the release's own code at the commit release.json names;
this file runs only ours.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import load_sampler, one_thread

from baselines.highres import scalecrafter
from baselines.settings import Seeds, Settings

FIXTURE = Path(__file__).parent / "fixtures" / "scalecrafter"
RELEASE = json.loads((FIXTURE / "release.json").read_text())


def run_recorded(name: str, case: dict, monkeypatch, **fields):
    """Our sampler on the fixture's case (its settings row forced at a small size): per-step latents, the uint8
    image, the sample's stage-I record and the sampler."""
    row = scalecrafter.nearest_row(tuple(case["row"]))[0]
    monkeypatch.setattr(scalecrafter, "nearest_row", lambda size: (row, False))
    start, latents = scalecrafter.start, []

    def recording_start(*args):
        scheduler, latent = start(*args)
        step = scheduler.step
        scheduler.step = lambda *a, **k: latents.append(step(*a, **k)) or latents[-1]
        return scheduler, latent

    monkeypatch.setattr(scalecrafter, "start", recording_start)
    seeds = RELEASE["seeds"]
    with one_thread():
        sampler = replace(load_sampler(name, Settings(steps=RELEASE["steps"], sr_steps=1,
                                                      guidance=RELEASE["guidance"])), **fields)
        image, record = sampler(RELEASE["prompt"], tuple(case["size"]),
                                Seeds(seeds["noise"], seeds["sr_noise"], seeds["offsets"]))
    uint8 = ((image[0].float() + 1) / 2).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    return torch.cat([out.prev_sample for out in latents]), uint8, record["stage1"], sampler


@pytest.mark.parametrize("case", sorted(RELEASE["cases"]))
def test_our_loop_equals_the_releases_pipeline_processor(monkeypatch, case):
    """Every step's latent to 1e-4 and the image to 1 level: re-dilation, its progressive shrinking, damped
    guidance (its base from the milder pass, its direction from the re-dilated pair) and DDIM's eta."""
    settings = RELEASE["cases"][case]
    with np.load(FIXTURE / "release.npz") as arrays:
        reference, reference_image = torch.from_numpy(arrays[f"{case}.latents"]), arrays[f"{case}.image"]
    if settings["eta"]:  # the variant, FreeU off: the release's FreeU does nothing on tiny (release.json)
        latents, image, stage1, _ = run_recorded("scalecrafter-release", settings, monkeypatch, freeu=None)
    else:
        latents, image, stage1, _ = run_recorded("scalecrafter", settings, monkeypatch)
    assert stage1["scalecrafter"]["dilate_steps"] == settings["dilate_tau"]
    assert stage1["scalecrafter"]["ndcfg_steps"] == settings["ndcfg_tau"]
    assert stage1["sampler"] == f"DDIM (eta {settings['eta']:g})" and stage1["freeu"] is None
    assert latents.shape == reference.shape
    for step, (ours, theirs) in enumerate(zip(latents, reference)):
        assert (ours - theirs).abs().max() <= 1e-4, f"step {step}"
    assert np.abs(image.astype(int) - reference_image.astype(int)).max() <= 1


def test_the_release_variant_samples_with_eta_1_and_freeu_and_leaves_the_unet_as_it_was(monkeypatch):
    case = RELEASE["cases"]["2048x2048-eta1"]
    _, image, stage1, sampler = run_recorded("scalecrafter-release", case, monkeypatch)
    assert stage1["sampler"] == "DDIM (eta 1)" and stage1["variance_noise"]
    assert stage1["freeu"] == {"b1": 1.1, "b2": 1.2, "s1": 0.9, "s2": 0.2} == scalecrafter.RELEASE_FREEU
    freeu = [getattr(block, key, None) for block in sampler.models.unet.up_blocks for key in ("b1", "b2", "s1", "s2")]
    assert freeu == [None] * len(freeu)  # the shared UNet is as it was
    _, again, _, _ = run_recorded("scalecrafter-release", case, monkeypatch)
    _, default, default_stage1, _ = run_recorded("scalecrafter", case, monkeypatch)
    _, no_freeu, _, _ = run_recorded("scalecrafter-release", case, monkeypatch, freeu=None)
    assert np.array_equal(image, again)  # fixed seeds: the variance noise is the sample's, not torch's global one
    assert not np.array_equal(image, default) and not np.array_equal(image, no_freeu)
    assert default_stage1["sampler"] == "DDIM (eta 0)" and default_stage1["freeu"] is None
    parameters = sampler.parameters()
    assert parameters["sampler"] == parameters["release_sampling"]["sampler"] == "DDIM (eta 1)"
    assert parameters["freeu"] == parameters["release_sampling"]["freeu"]
