"""Properties of the tiling engine: equivalence, coverage, cost, fill, determinism, errors."""

import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from baselines.tiled_sampling import sample
from baselines.tiling import (TiledDenoiser, TilingConfig, axis_origins, gaussian_weights,
                              plan_step, stitch, tile_count)

SIZES = [(128, 128), (100, 150), (40, 200), (64, 64), (65, 130)]


def pointwise(latent, t, cond):
    """A denoiser with no spatial context: tiling must not change its output."""
    scale = 0.5 + float(t) / 1000
    return latent * scale + 0.1 * latent ** 3 + (0 if cond is None else cond)


def strategies():
    return [TilingConfig("none"), TilingConfig("nonoverlap"), TilingConfig("explicit"),
            TilingConfig("explicit", overlap=16, weighting="uniform"),
            TilingConfig("implicit"), TilingConfig("implicit", fill="latent"),
            TilingConfig("implicit", offset="fixed"),
            TilingConfig("nonoverlap", tile_batch_size=3)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("config", strategies(), ids=lambda c: repr(c.as_record()))
def test_pointwise_denoiser_stitches_to_the_untiled_prediction(size, config):
    generator = torch.Generator().manual_seed(0)
    latent = torch.randn((2, 4) + size, generator=generator, dtype=torch.float64)
    cond = torch.randn((2, 4) + size, generator=generator, dtype=torch.float64)
    t = torch.tensor(500)
    expected = pointwise(latent, t, cond)
    offsets = [(0, 0), (7, 19), (31, 1)] if config.strategy == "implicit" else [(0, 0)]
    for offset in offsets:
        plan = plan_step(size, config, offset)
        weights = gaussian_weights(*plan.tile_hw) if config.weighting == "gaussian" \
            else torch.ones(plan.tile_hw, dtype=torch.float64)
        stitched, covered, _ = stitch(latent, t, pointwise, plan, weights, cond,
                                      config.tile_batch_size)
        covered = covered.expand_as(latent)
        torch.testing.assert_close(stitched[covered], expected[covered], rtol=1e-12, atol=1e-12)
        if offset == (0, 0):
            assert bool(covered.all()), "every pixel must be covered without an offset"


@pytest.mark.parametrize("config", [c for c in strategies() if c.strategy != "implicit"],
                         ids=lambda c: c.strategy)
def test_full_sampling_with_a_pointwise_denoiser_equals_untiled(config):
    latent = torch.randn((1, 4, 100, 136), generator=torch.Generator().manual_seed(1))
    outputs = []
    for tiling in (TilingConfig("none"), config):
        scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                                  beta_start=0.00085, beta_end=0.012, clip_sample=False)
        scheduler.set_timesteps(10)
        outputs.append(sample(TiledDenoiser(pointwise, tiling), scheduler, latent.clone()))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)


def test_implicit_without_offsets_replays_nonoverlap_bit_for_bit():
    latent = torch.randn((1, 4, 96, 160), generator=torch.Generator().manual_seed(2))

    def denoiser(x, t, cond):  # spatial context, so that tiling matters
        return torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2) * 0.3 + x * 0.1

    outputs = []
    for tiling in (TilingConfig("nonoverlap"), TilingConfig("implicit", offset_range=1)):
        scheduler = DDPMScheduler(num_train_timesteps=1000)
        scheduler.set_timesteps(12)
        outputs.append(sample(TiledDenoiser(denoiser, tiling), scheduler, latent.clone(),
                              generator=torch.Generator().manual_seed(3)))
    assert torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize("height", [64, 65, 100, 128, 200, 257])
@pytest.mark.parametrize("width", [64, 96, 130, 256])
@pytest.mark.parametrize("overlap", [0, 8, 16, 32, 48])
def test_explicit_tile_count_follows_eq4_and_covers_the_latent(height, width, overlap):
    config = TilingConfig("explicit", tile=64, overlap=overlap)
    per_axis = [1 if s <= 64 else math.ceil((s - overlap) / (64 - overlap)) for s in (height, width)]
    assert tile_count((height, width), config) == per_axis[0] * per_axis[1]
    plan = plan_step((height, width), config)
    assert len(plan.windows) == per_axis[0] * per_axis[1]
    coverage = torch.zeros(height, width)
    for y, x in plan.windows:
        assert 0 <= y <= height - plan.tile_hw[0] and 0 <= x <= width - plan.tile_hw[1]
        coverage[y:y + plan.tile_hw[0], x:x + plan.tile_hw[1]] += 1
    assert bool((coverage > 0).all())


def test_eq4_for_a_1024_px_image_is_9_tiles_against_4():
    assert tile_count((128, 128), TilingConfig("explicit")) == 9
    assert tile_count((128, 128), TilingConfig("nonoverlap")) == 4


def count_calls(config: TilingConfig, size=(128, 128), steps=8) -> TiledDenoiser:
    tiled = TiledDenoiser(pointwise, config, torch.Generator().manual_seed(0))
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(steps)
    sample(tiled, scheduler, torch.zeros((1, 4) + size))
    return tiled


def test_implicit_costs_what_nonoverlap_costs_and_explicit_2_25_times_as_much():
    nonoverlap = count_calls(TilingConfig("nonoverlap"))
    implicit = count_calls(TilingConfig("implicit"))
    explicit = count_calls(TilingConfig("explicit", tile=64, overlap=32))
    assert implicit.calls == nonoverlap.calls == 8 * 4
    assert implicit.tile_evaluations == nonoverlap.tile_evaluations
    assert explicit.calls / nonoverlap.calls == pytest.approx(2.25)
    assert count_calls(TilingConfig("none")).calls == 8


def test_tile_batches_reduce_calls_but_not_tile_evaluations():
    one = count_calls(TilingConfig("explicit"))
    batched = count_calls(TilingConfig("explicit", tile_batch_size=4))
    assert batched.tile_evaluations == one.tile_evaluations == 8 * 9
    assert batched.calls == 8 * math.ceil(9 / 4)


class RecordingScheduler:
    """The scheduler interface the sampler uses, recording every latent it is given."""

    def __init__(self, steps):
        self.timesteps = torch.arange(steps * 100, 0, -100)
        self.seen = []

    def scale_model_input(self, latent, t):
        return latent

    def step(self, prediction, t, latent, generator=None):
        self.seen.append(latent.clone())
        return type("Output", (), {"prev_sample": latent - 0.1 * prediction})


def test_fill_latent_keeps_the_uncovered_strip_and_updates_the_rest():
    config = TilingConfig("implicit", offset="fixed", offset_range=32, fill="latent")
    scheduler = RecordingScheduler(steps=3)
    latent = torch.randn((1, 4, 128, 128), generator=torch.Generator().manual_seed(4))
    tiled = TiledDenoiser(pointwise, config)
    final = sample(tiled, scheduler, latent)
    assert tiled.offsets == [(0, 0), (16, 16), (16, 16)]
    before, after = scheduler.seen[1], scheduler.seen[2]  # around the first shifted step
    strip = torch.zeros(128, 128, dtype=torch.bool)
    strip[:16, :] = True
    strip[:, :16] = True
    assert torch.equal(after[..., strip], before[..., strip])
    assert not torch.isclose(after[..., ~strip], before[..., ~strip]).any()
    assert torch.equal(final[..., strip], before[..., strip])


def test_fill_eps_reuses_the_previous_prediction_in_the_uncovered_strip():
    config = TilingConfig("implicit", offset="fixed", offset_range=20)
    tiled = TiledDenoiser(pointwise, config)
    latent = torch.randn((1, 4, 96, 96), generator=torch.Generator().manual_seed(5))
    first = tiled(latent, torch.tensor(900), 0)
    second = tiled(latent * 2, torch.tensor(800), 1)
    strip = tiled.uncovered.expand_as(latent)
    assert tiled.offsets[-1] == (10, 10) and bool(strip.any())
    assert torch.equal(second[strip], first[strip])
    torch.testing.assert_close(second[~strip], pointwise(latent * 2, 800, None)[~strip])


def test_offsets_are_reset_every_k_steps_and_lie_in_range():
    tiled = count_calls(TilingConfig("implicit", offset_range=24, reset_every=3), steps=30)
    for step, (dy, dx) in enumerate(tiled.offsets):
        if step % 3 == 0:
            assert (dy, dx) == (0, 0)
        assert 0 <= dy < 24 and 0 <= dx < 24
    assert len({o for o in tiled.offsets}) > 5, "random offsets should vary"


def test_identical_seeds_replay_identical_offsets_and_outputs():
    def denoiser(x, t, cond):
        return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)

    runs = []
    for seed in (7, 7, 8):
        tiled = TiledDenoiser(denoiser, TilingConfig("implicit"), torch.Generator().manual_seed(seed))
        scheduler = DDPMScheduler(num_train_timesteps=1000)
        scheduler.set_timesteps(10)
        out = sample(tiled, scheduler, torch.ones((1, 4, 100, 100)),
                     generator=torch.Generator().manual_seed(seed))
        runs.append((out, tiled.offsets))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert runs[0][1] != runs[2][1]


@pytest.mark.parametrize("size", [(40, 40), (40, 100), (100, 30)])
@pytest.mark.parametrize("strategy", ["nonoverlap", "explicit", "implicit"])
def test_a_latent_smaller_than_the_tile_is_one_tile_along_that_axis(size, strategy):
    plan = plan_step(size, TilingConfig(strategy), (5, 5))
    assert plan.tile_hw == (min(64, size[0]), min(64, size[1]))
    rows = {y for y, _ in plan.windows}
    assert rows == ({0} if size[0] <= 64 else set(axis_origins(size[0], 64, 64, 5)))
    if size[0] <= 64 and size[1] <= 64:
        assert plan.windows == [(0, 0)]


def test_axis_origins_clamp_the_last_tile_to_the_edge():
    assert axis_origins(200, 64, 64) == [0, 64, 128, 136]
    assert axis_origins(200, 64, 64, offset=10) == [10, 74, 136, 136]
    assert axis_origins(50, 64, 64, offset=10) == [0]


def test_gaussian_weights_peak_in_the_centre_and_vanish_at_the_edges():
    weights = gaussian_weights(64, 64)
    assert torch.equal(weights, weights.flip(0)) and torch.equal(weights, weights.flip(1))
    assert weights.max() == weights[31:33, 31:33].max()
    edge_over_centre = float(weights[0, 31] / weights[31, 31])
    expected = math.exp(-((31.5 / 64) ** 2) / 0.02) / math.exp(-((0.5 / 64) ** 2) / 0.02)
    assert edge_over_centre == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "diagonal"}, "unknown tiling strategy"),
    ({"tile": 0}, "tile size must be positive"),
    ({"tile": -64}, "tile size must be positive"),
    ({"overlap": -1}, "overlap must not be negative"),
    ({"strategy": "explicit", "overlap": 64}, "must be smaller than the tile"),
    ({"strategy": "explicit", "overlap": 80}, "must be smaller than the tile"),
    ({"offset_range": -2}, "offset range must not be negative"),
    ({"offset_range": 65}, "must not exceed the tile"),
    ({"fill": "zeros"}, "unknown fill"),
    ({"offset": "sometimes"}, "unknown offset mode"),
    ({"reset_every": 0}, "reset_every must be at least 1"),
    ({"tile_batch_size": 0}, "tile_batch_size must be at least 1"),
])
def test_bad_tiling_parameters_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TilingConfig(**kwargs)
