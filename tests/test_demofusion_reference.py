"""``demofusion`` against the authors' own pipeline (PRIS-CV/DemoFusion), run on the tiny SD 2.1 and SDXL models.

The fixture (tests/fixtures/demofusion/: ``make_fixture.py --model`` imports the release from a
checkout; each model's json names the commit, the stand-ins and the command) holds the release's
latent at the end of every phase; these tests hold our sampler to it formula for formula: the
skip residual, the local views, the blurred dilated sampling with its padding, their cosine
blend, each phase's rescaling to phase 1's statistics and, on SDXL, the micro-conditioning the
release gives every phase, dilated sampling and each local view.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import CPU, one_thread

from baselines.highres.demofusion import DemoFusionSampler
from baselines.models import WeightPaths
from baselines.registry import LoadContext, get_method
from baselines.settings import Seeds, Settings

FIXTURE = Path(__file__).parent / "fixtures" / "demofusion"
RECORDS = {"sd21": "release.json", "sdxl": "release_sdxl.json"}
ATOL = 1e-4  # the release blends stepped latents, we blend predictions: equal up to rounding


@pytest.fixture(scope="module", params=sorted(RECORDS))
def run(request):
    record = json.loads((FIXTURE / RECORDS[request.param]).read_text())
    assert record["model"] == request.param
    settings = Settings(steps=record["steps"], sr_steps=1, guidance=record["guidance"])
    method = get_method("demofusion")
    with one_thread():
        sampler = method.load(method, LoadContext("tiny", settings, CPU, WeightPaths(), request.param))
        sampler.models.unet.register_to_config(sample_size=record["native_latent"])  # as the fixture: 256 px
        yield sampler, record, load_file(FIXTURE / record["latents_file"])


def conditioning(sampler, record, case):
    """What a run of the case's size gives the sampler (SDXL: that size's time ids, as the release's call)."""
    return sampler.models.guidance_pair(record["prompt"], tuple(record[case]["size"]))


def test_a_whole_run_at_the_releases_own_phase_sizes_ends_on_its_latent(run):
    sampler, record, release = run
    final = release["aligned_phase3"]
    negative, positive = conditioning(sampler, record, "aligned")
    with one_thread():
        ours, out = sampler.latent(negative, positive, tuple(final.shape[-2:]), Seeds(record["aligned"]["seed"], 0, 0))
    phases = out.details["demofusion"]["phases"]
    assert [p["size"] for p in phases] == record["aligned"]["phase_sizes"]
    torch.testing.assert_close(ours, final, atol=ATOL, rtol=0)
    if record["model"] == "sdxl":  # the final size in every phase, as the release
        size = record["aligned"]["size"]
        assert phases[0]["time_ids"] == {"original_size": size, "crop_top_left": [0, 0], "target_size": size}
        assert all(p["time_ids"]["target_size"] == size for p in phases[1:])
    else:
        assert all(p["time_ids"] is None for p in phases)


@pytest.mark.parametrize("k", [2, 3])
def test_each_upscaled_phase_from_the_releases_previous_one_ends_on_its_latent(run, k):
    sampler, record, release = run
    first, previous, expected = (release[f"unaligned_phase{n}"] for n in (1, k - 1, k))
    generator = torch.Generator().manual_seed(record["unaligned"]["phase_seed_base"] + k)
    negative, positive = conditioning(sampler, record, "unaligned")
    with one_thread():
        ours, _ = sampler.upscale_phase(previous, tuple(expected.shape[-2:]), k, negative, positive, generator,
                                        (first.mean(), first.std()))
    torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("run", ["sdxl"], indirect=True)
@pytest.mark.parametrize("change", ["the phase's own size", "views cropped at their own corner"])
def test_on_sdxl_other_micro_conditioning_misses_the_releases_phase(run, change, monkeypatch):
    """The release's time ids are what the phase test holds: other plausible ones land elsewhere."""
    sampler, record, release = run
    first, expected = release["unaligned_phase1"], release["unaligned_phase2"]
    if change == "the phase's own size":
        negative, positive = sampler.models.guidance_pair(record["prompt"], tuple(8 * s for s in expected.shape[-2:]))
    else:
        negative, positive = conditioning(sampler, record, "unaligned")
        monkeypatch.setattr(DemoFusionSampler, "crop_shift", 0)
    generator = torch.Generator().manual_seed(record["unaligned"]["phase_seed_base"] + 2)
    with one_thread():
        ours, _ = sampler.upscale_phase(first, tuple(expected.shape[-2:]), 2, negative, positive, generator,
                                        (first.mean(), first.std()))
    assert (ours - expected).abs().max() > 100 * ATOL
