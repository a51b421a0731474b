"""``demofusion`` against the authors' own pipeline (PRIS-CV/DemoFusion), run on the tiny SD 2.1 models.

The fixture (tests/fixtures/demofusion/: ``make_fixture.py`` imports the release from a checkout,
release.json names the commit, the stand-ins and the command) holds the release's latent at the
end of every phase; these tests hold our sampler to it formula for formula: the skip residual,
the local views, the blurred dilated sampling with its padding, their cosine blend, and each
phase's rescaling to phase 1's statistics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import load_sampler, one_thread

from baselines.settings import Seeds, Settings

FIXTURE = Path(__file__).parent / "fixtures" / "demofusion"
RECORD = json.loads((FIXTURE / "release.json").read_text())
ATOL = 1e-4  # the release blends stepped latents, we blend predictions: equal up to rounding


@pytest.fixture(scope="module")
def run():
    with one_thread():
        sampler = load_sampler("demofusion", Settings(steps=RECORD["steps"], sr_steps=1,
                                                       guidance=RECORD["guidance"]))
        sampler.models.unet.register_to_config(sample_size=RECORD["native_latent"])  # as the fixture: 256 px
        negative, positive = sampler.models.encode_text(["", RECORD["prompt"]]).chunk(2)
        yield sampler, negative, positive, load_file(FIXTURE / "release_latents.safetensors")


def test_a_whole_run_at_the_releases_own_phase_sizes_ends_on_its_latent(run):
    sampler, negative, positive, release = run
    final = release["aligned_phase3"]
    with one_thread():
        ours, record = sampler.latent(negative, positive, tuple(final.shape[-2:]), Seeds(RECORD["aligned"]["seed"], 0, 0))
    assert [p["size"] for p in record["demofusion"]["phases"]] == RECORD["aligned"]["phase_sizes"]
    torch.testing.assert_close(ours, final, atol=ATOL, rtol=0)


@pytest.mark.parametrize("k", [2, 3])
def test_each_upscaled_phase_from_the_releases_previous_one_ends_on_its_latent(run, k):
    sampler, negative, positive, release = run
    first, previous, expected = (release[f"unaligned_phase{n}"] for n in (1, k - 1, k))
    generator = torch.Generator().manual_seed(RECORD["unaligned"]["phase_seed_base"] + k)
    with one_thread():
        ours, _ = sampler.upscale_phase(previous, tuple(expected.shape[-2:]), k, negative, positive, generator,
                                        (first.mean(), first.std()))
    torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)
