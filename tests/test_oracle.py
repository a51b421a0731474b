"""The weight-free oracle and the two measures: seam score and distribution error."""

import pytest
import torch

from baselines.tiling import TilingConfig
from benchmark.oracle.job import OracleFSTDJob
from benchmark.oracle.field import GaussianField, patch_frechet_distance
from benchmark.runs.runner import run
from benchmark.metrics.seams import seam_score, tile_borders

FIELD = GaussianField()


def test_field_samples_have_the_covariance_of_the_spectrum():
    samples = FIELD.sample(4, 96, 96, torch.Generator().manual_seed(0)).double()
    assert samples.shape == (4, 4, 96, 96)
    assert float(samples.var()) == pytest.approx(1.0, abs=0.1)
    gamma = FIELD.autocovariance(3)
    assert float(gamma[3, 3]) == pytest.approx(1.0, rel=1e-6)
    lag1 = float((samples[..., :, 1:] * samples[..., :, :-1]).mean())
    assert lag1 == pytest.approx(float(gamma[3, 4]), abs=0.05)
    assert float(gamma[3, 4]) < 1.0 and float(gamma[3, 6]) < float(gamma[3, 4])


def test_distribution_error_is_small_for_true_samples_and_large_for_wrong_ones():
    true = FIELD.sample(8, 96, 96, torch.Generator().manual_seed(1))
    white = torch.randn(8, 4, 96, 96, generator=torch.Generator().manual_seed(2))
    assert patch_frechet_distance(true, FIELD) < 0.1
    assert patch_frechet_distance(white, FIELD) > 5.0
    assert patch_frechet_distance(true, FIELD, margin=16) < 0.15


def test_seam_score_is_one_without_seams_and_rises_with_a_step_at_tile_borders():
    field = FIELD.sample(2, 256, 256, torch.Generator().manual_seed(3))
    assert seam_score(field, 64) == pytest.approx(1.0, abs=0.1)
    blocky = field.clone()
    for k, y in enumerate(range(0, 256, 64)):
        blocky[..., y:y + 64, :] += 0.5 * (-1) ** k
    assert seam_score(blocky, 64) > 1.5
    assert seam_score(torch.zeros(1, 1, 40, 40) + torch.randn(1, 1, 40, 40), 64) == 1.0


def test_tile_borders_follow_the_clamped_grid():
    assert tile_borders(256, 64) == [64, 128, 192]
    assert tile_borders(200, 64) == [64, 128, 136, 192]
    assert tile_borders(50, 64) == []


def test_untiled_oracle_sampling_converges_to_field_samples():
    errors = {}
    for steps in (25, 200):
        job = OracleFSTDJob(TilingConfig("none"), size=(512, 512), steps=steps)
        samples = torch.cat([job.run_sample(i)[0]["latent"] for i in range(8)])
        errors[steps] = patch_frechet_distance(samples, FIELD, margin=8)
    assert errors[200] < 0.1
    assert errors[200] < errors[25] / 2
    assert seam_score(samples, 64) == pytest.approx(1.0, abs=0.1)


def test_on_the_oracle_nonoverlap_seams_and_implicit_does_not(tmp_path):
    """The paper's Table 4 claim in miniature: 1024 px (128² latent), tile 64."""
    scores = {}
    for name, tiling in {"none": TilingConfig("none"), "nonoverlap": TilingConfig("nonoverlap"),
                         "explicit": TilingConfig("explicit"),
                         "implicit": TilingConfig("implicit")}.items():
        results = run(OracleFSTDJob(tiling, size=(1024, 1024), steps=40), 3, tmp_path / name,
                      progress=False)
        scores[name] = results["seam_score"]
    assert scores["nonoverlap"] > 2.0
    for other in ("none", "explicit", "implicit"):
        assert scores["nonoverlap"] > scores[other] + 0.8
    assert abs(scores["implicit"] - scores["none"]) < 0.35 * (scores["nonoverlap"] - scores["none"])


def test_oracle_samples_replay_exactly_from_their_seed():
    job = OracleFSTDJob(TilingConfig("implicit"), size=(512, 768), steps=12, seed=5)
    first, record = job.run_sample(3)
    again, record_again = job.run_sample(3)
    other, record_other = OracleFSTDJob(TilingConfig("implicit"), size=(512, 768), steps=12,
                                        seed=6).run_sample(3)
    assert torch.equal(first["latent"], again["latent"])
    assert record["offsets"] == record_again["offsets"]
    assert record["offsets"] != record_other["offsets"]
    assert not torch.equal(first["latent"], other["latent"])


def test_oracle_sizes_must_be_multiples_of_eight():
    with pytest.raises(ValueError, match="multiple of 8"):
        OracleFSTDJob(TilingConfig("none"), size=(1020, 1024))
