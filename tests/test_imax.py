"""``i-max`` on tiny FLUX: both phases against the authors' own pipeline and transformer (PRIS-CV/I-Max, run
on the same tiny weights: tests/fixtures/imax/, its json names the commit, the stand-ins and the command),
each of the release's pieces against its definition (Haar low band, rotary frequencies, proportional
attention, the native size), the transformer restored after, and a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from safetensors.torch import load_file

from helpers import CPU, load_sampler, one_thread

from baselines.flow_matching import pack, unpack
from baselines.highres.imax import (_Factor, extrapolating, low_band, native_size,
                                    rotary_frequencies)
from baselines.models import load_text_to_image
from baselines.settings import Seeds, Settings
from baselines.vae_tiling import VaeTiling
from benchmark.errors import UsageError
from benchmark.spec import RunSpec


FIXTURE = Path(__file__).parent / "fixtures" / "imax"


@pytest.fixture(scope="module")
def dev():
    return load_text_to_image("tiny", CPU, torch.float32, model="flux")


@one_thread()
def test_both_phases_end_on_the_releases_latents():
    """The release at its defaults on the same tiny FLUX, noise and text: phase 1 at half the side (fewer
    than 4096 tokens: interpolated frequencies), resized and re-encoded, phase 2 with two copies of the
    text, proportional attention, swin padding and the cosine-shift projection."""
    record = json.loads((FIXTURE / "release.json").read_text())
    release = load_file(FIXTURE / record["latents_file"])
    settings = Settings(record["steps"], 1, guidance=3.5, vae_tiling=VaeTiling("off"))
    sampler = load_sampler("i-max", settings, model="flux")
    _, text = sampler.models.guidance_pair(record["prompt"], tuple(record["size"]))
    with torch.no_grad():
        native, target = sampler.sample(text, tuple(record["size"]), torch.Generator().manual_seed(record["seed"]))
    ours = {"native": native, "target": target}
    for phase, latent in ours.items():
        pooled = F.avg_pool2d(unpack(latent), record["pool"])
        assert pooled.shape == release[phase].shape
        assert (pooled - release[phase]).abs().max() < 1e-4 * release[phase].abs().max(), phase


def test_the_low_band_is_the_level_one_haar_approximation_of_the_latent():
    latent = torch.randn(1, 16, 10, 14)
    haar = F.interpolate(F.avg_pool2d(latent, 2), scale_factor=2, mode="nearest")  # LL band, reconstructed
    assert torch.allclose(unpack(low_band(pack(latent))), haar, atol=1e-6)


def test_rotary_frequencies_are_fluxs_unscaled_and_the_larger_of_ntk_and_interpolation_scaled(dev):
    ids = torch.stack([torch.zeros(50), torch.arange(50.0) * 3, torch.arange(50.0) % 7], dim=1)
    pos_embed = dev.unet.pos_embed
    plain = rotary_frequencies(pos_embed.axes_dim, pos_embed.theta, ids, 1.0, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, pos_embed(ids)))
    cos, _ = rotary_frequencies(pos_embed.axes_dim, pos_embed.theta, ids, 10.0, 2.0)
    start = 0
    for axis, dim in enumerate(pos_embed.axes_dim):
        common = dict(theta=pos_embed.theta, use_real=True, repeat_interleave_real=True, freqs_dtype=torch.float64)
        ntk, _ = get_1d_rotary_pos_embed(dim, ids[:, axis], ntk_factor=10.0, **common)
        linear, _ = get_1d_rotary_pos_embed(dim, ids[:, axis], linear_factor=2.0, **common)
        ours = cos[:, start:start + dim]
        assert all(torch.allclose(ours[:, k], ntk[:, k], atol=1e-6) or torch.allclose(ours[:, k], linear[:, k], atol=1e-6)
                   for k in range(dim))
        start += dim


@one_thread()
def test_scaled_queries_are_attention_at_the_proportional_scale(dev, monkeypatch):
    """Queries times c under SDPA's 1/sqrt(d) equal SDPA at scale c/sqrt(d): the release's log-ratio scale."""
    transformer, factor = dev.unet, _Factor(1.7)
    inputs = dict(hidden_states=torch.randn(1, 24, 64), timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]),
                  encoder_hidden_states=torch.randn(1, 5, 32), pooled_projections=torch.randn(1, 32),
                  txt_ids=torch.zeros(5, 3), img_ids=torch.stack([torch.zeros(24), torch.arange(24.0) // 6,
                                                                  torch.arange(24.0) % 6], dim=1))
    with torch.no_grad(), extrapolating(transformer, 1.0, factor):
        scaled = transformer(**inputs).sample
    original = F.scaled_dot_product_attention

    def at_scale(query, key, value, *args, **kwargs):
        return original(query, key, value, *args, **{**kwargs, "scale": 1.7 / math.sqrt(query.shape[-1])})

    monkeypatch.setattr(F, "scaled_dot_product_attention", at_scale)
    with torch.no_grad(), extrapolating(transformer, 1.0):
        reference = transformer(**inputs).sample
    monkeypatch.undo()
    with torch.no_grad():
        restored = transformer(**inputs).sample
    assert torch.allclose(scaled, reference, atol=1e-5) and (scaled - restored).abs().max() > 1e-4
    assert type(transformer.pos_embed).__name__ == "FluxPosEmbed"


def test_the_native_size_is_the_releases_integer_division():
    assert native_size((4096, 4096)) == (1024, 1024)
    assert native_size((1536, 768)) == (1536, 768)
    assert native_size((3072, 1536)) == (1536, 768)
    assert native_size((2048, 4096)) == (672, 1360)  # scale 2.83 rounds to 3: 682 and 1365, in whole tokens


@one_thread()
def test_i_max_makes_the_exact_size_and_records_both_phases():
    sampler = load_sampler("i-max", Settings(2, 2, guidance=3.5), model="flux")
    image, record = sampler("a lighthouse", (260, 390), Seeds(1, 2, 3))
    assert tuple(image.shape[-2:]) == (260, 390) and bool(torch.isfinite(image).all())
    details = record.stage1.details
    assert details["native_size"] == [272, 400] and details["imax"]["schedule"] == "cosine_shift"
    assert record.stage1.unet_calls == 4 and details["guidance"].startswith("embedded 3.5 (native), 7")
    again, _ = sampler("a lighthouse", (260, 390), Seeds(1, 2, 3))
    assert torch.equal(image, again)


def test_i_max_runs_on_flux_dev_only():
    with pytest.raises(UsageError, match="i-max runs on the model flux"):
        RunSpec("i-max", model="flux-schnell").resolved()
