"""Intervals on every score and paired differences: the bootstrap's properties, its fast resamplers
against the plain computations, and the intervals a tiny run records, reports and compares."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from benchmark import api
from benchmark.cli import main
from benchmark.errors import UsageError
from benchmark.metrics.bootstrap import Bootstrap, crops_of, interval, mean_of, paired, replicates
from benchmark.metrics.fid import frechet_distance, frechet_resampler, gaussian_stats
from benchmark.metrics.fid_infinity import fid_infinity
from benchmark.metrics import kid
from benchmark.metrics.kid import kernel_inception_distance, kid_resampler
from benchmark.spec import RunSpec
from datasets_fixtures import make_dataset


def test_the_interval_of_a_mean_covers_the_true_mean_in_about_95_percent_of_trials():
    rng = np.random.default_rng(7)
    covered, trials = 0, 300
    for trial in range(trials):
        values = rng.exponential(2.0, size=40)  # skewed, true mean 2
        bootstrap = Bootstrap(resamples=400, seed=trial)
        low, high = interval(replicates(mean_of(values), bootstrap.draws(len(values))), bootstrap.level)
        covered += low <= 2.0 <= high
    assert 0.89 <= covered / trials <= 0.98, covered / trials


def test_draws_depend_only_on_the_count_and_seed_so_two_runs_pair():
    assert np.array_equal(Bootstrap(50, 3).draws(9), Bootstrap(50, 3).draws(9))
    assert not np.array_equal(Bootstrap(50, 3).draws(9), Bootstrap(50, 4).draws(9))
    assert Bootstrap(50, 3).draws(9).shape == (50, 9) and Bootstrap(50, 3).draws(9).max() < 9


@pytest.mark.parametrize("rows, dimensions", [(6, 16), (40, 16)])  # below D: low rank; from D up: full
def test_the_frechet_resampler_equals_the_plain_distance(rows, dimensions):
    rng = np.random.default_rng(rows)
    features = rng.normal(size=(rows, dimensions))
    reference = rng.normal(0.3, 1.2, size=(200, dimensions))
    mu, sigma = gaussian_stats(reference)
    resample = frechet_resampler(features, mu, sigma)
    for positions in (np.arange(rows), rng.integers(0, rows, rows)):
        expected = frechet_distance(*gaussian_stats(features[positions]), mu, sigma)
        assert resample(positions) == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("gather", [kid.GATHER, 7])  # all subsets in one gather, or a few at a time
def test_the_kid_resampler_equals_kid_on_the_chosen_rows_whatever_their_count(gather, monkeypatch):
    monkeypatch.setattr(kid, "GATHER", gather)
    rng = np.random.default_rng(1)
    generated, reference = rng.normal(size=(9, 12)), rng.normal(0.2, 1, size=(14, 12))
    resample = kid_resampler(generated, reference)
    for positions in (np.arange(9), rng.integers(0, 9, 9), rng.integers(0, 9, 5)):
        assert resample(positions) == pytest.approx(kernel_inception_distance(generated[positions], reference)[0],
                                                    rel=1e-9, abs=1e-12)


def test_crops_follow_their_images():
    crops = crops_of([2, 0, 3])
    assert crops(np.array([2, 0, 0])).tolist() == [2, 3, 4, 0, 1, 0, 1]
    assert crops(np.array([1])).tolist() == []


def test_paired_differences_refuse_runs_on_other_items():
    record = {"resamples": 2, "seed": 0, "images": 2, "level": 0.95, "items": [["a", [64, 64]], ["b", [64, 64]]],
              "values": {"fid": 1.0}, "replicates": {"fid": [1.0, 2.0]}}
    other = {**record, "items": [["a", [64, 64]], ["c", [64, 64]]]}
    with pytest.raises(ValueError, match="not on the same items"):
        paired(record, other, 0.95)
    same = paired(record, {**record, "values": {"fid": 0.5}, "replicates": {"fid": [0.0, 0.0]}}, 0.95)["fid"]
    assert same["difference"] == 0.5 and same["excludes_zero"] and same["low"] > 0


def test_replicates_that_could_not_be_computed_are_left_out_of_paired_intervals():
    """A resample where a score has no value is stored as null (e.g. too few patch crops)."""
    record = {"resamples": 3, "seed": 0, "images": 2, "level": 0.95, "items": [["a", [64, 64]], ["b", [64, 64]]],
              "values": {"kid": 1.0, "fid_patch": None}, "replicates": {"kid": [1.0, None, 3.0],
                                                                        "fid_patch": [None, None, None]}}
    other = {**record, "values": {"kid": 0.5, "fid_patch": 2.0}, "replicates": {"kid": [0.5, 0.5, None],
                                                                               "fid_patch": [1.0, 2.0, 3.0]}}
    rows = paired(record, other, 0.95)
    assert rows["kid"]["difference"] == 0.5 and rows["kid"]["low"] is None  # one finite pair: no interval
    assert rows["fid_patch"]["difference"] is None and rows["fid_patch"]["low"] is None
    record["replicates"]["kid"], other["replicates"]["kid"] = [1.0, None, 3.0, 2.0], [0.5, 0.5, 1.0, 1.0]
    assert paired(record, other, 0.95)["kid"]["low"] == pytest.approx(np.percentile([0.5, 2.0, 1.0], 2.5))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    # two images of each of two sizes: wider than one 512-px stage II tile (seams), above the 299-px crop
    dataset = make_dataset(folder.parent / "data", [(320, 640), (640, 320)] * 2, name="intervals")
    return {method: api.run(RunSpec(method, dataset=str(dataset), limit=limit, steps=1, sr_steps=1, runs=folder,
                                    progress=False))
            for method, limit in (("asd", 4), ("ar-tile", 4))}, folder


def test_a_tiny_run_records_an_interval_for_each_score_and_the_report_prints_them(runs):
    finished, folder = runs
    scores = finished["asd"].results["scores"]
    computed = [name for name in ("fid", "kid", "fid_patch", "kid_patch", "inception_score", "clip_score", "seam_score")
                if scores[name] is not None]
    assert len(computed) == 7 and scores["images"] == 4
    assert scores["bootstrap"] == {"resamples": 200, "seed": 0, "level": 0.95, "images": 4,
                                   "method": "percentile bootstrap over the generated images, references fixed"}
    for name in computed:
        bounds = scores["intervals"][name]
        assert bounds["low"] <= bounds["high"], name
    for name in ("clip_score", "seam_score"):  # means of per-image values: the mean lies inside
        assert scores["intervals"][name]["low"] <= scores[name] <= scores["intervals"][name]["high"]
    api.report(folder, folder / "reports")
    text = (folder / "reports" / "tiny.md").read_text()
    fid = scores["fid"]
    assert f"{fid:.2f} [{scores['intervals']['fid']['low']:.2f}, {scores['intervals']['fid']['high']:.2f}]" in text
    assert "- intervals: [low, high] after a score: 95% percentile bootstrap" in text


def test_diff_of_a_run_with_itself_is_zero_and_of_a_pair_is_a_minus_b(runs):
    finished, _ = runs
    asd, ar_tile = finished["asd"], finished["ar-tile"]
    itself = api.diff(asd.out, asd.out)
    assert itself and all(row["difference"] == 0 and row["low"] == row["high"] == 0 for row in itself.values())
    pair = api.diff(asd.out, ar_tile.out)
    assert set(pair) >= {"fid", "kid", "clip_score", "inception_score"}
    for name, row in pair.items():
        assert row["difference"] == pytest.approx(asd.results["scores"][name] - ar_tile.results["scores"][name])
        assert row["low"] <= row["high"]
        assert row["excludes_zero"] == (row["low"] > 0 or row["high"] < 0)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["diff", str(asd.out), str(ar_tile.out)]) == 0
    assert "| fid " in printed.getvalue() and "excludes 0" in printed.getvalue()


def test_diff_needs_intervals(runs, tmp_path):
    finished, _ = runs
    unscored = api.run(RunSpec("asd", limit=1, steps=1, sr_steps=1, runs=tmp_path, progress=False, bootstrap=0)).out
    with pytest.raises(UsageError, match="has no bootstrap.json"):
        api.diff(unscored, finished["asd"].out)


def test_fid_infinity_recovers_the_exact_distance_better_than_fid_at_the_largest_n():
    dimensions, count = 32, 200
    rng = np.random.default_rng(123)
    a, b = rng.normal(size=(2, dimensions, dimensions))
    sigma_g, sigma_r = a @ a.T / dimensions + 0.5 * np.eye(dimensions), b @ b.T / dimensions + 0.5 * np.eye(dimensions)
    mu_g, mu_r = np.zeros(dimensions), np.full(dimensions, 0.3)
    exact = frechet_distance(mu_g, sigma_g, mu_r, sigma_r)
    errors_infinity, errors_n = [], []
    for seed in range(5):
        features = np.random.default_rng(seed).multivariate_normal(mu_g, sigma_g, size=count)
        fitted = fid_infinity(features, mu_r, sigma_r, seed=seed)
        assert [n for n, _ in fitted["points"]][-1] == count and len(fitted["points"]) >= 5
        errors_infinity.append(abs(fitted["value"] - exact))
        errors_n.append(abs(frechet_distance(*gaussian_stats(features), mu_r, sigma_r) - exact))
    assert np.mean(errors_infinity) < np.mean(errors_n)


def test_a_run_under_20_images_says_why_it_has_no_fid_infinity(runs):
    scores = runs[0]["asd"].results["scores"]
    assert scores["fid_infinity"] is None
    assert scores["skipped"]["fid_infinity"] == "FID∞ needs at least 20 images, the run has 4"
    with pytest.raises(ValueError, match="at least 20 images"):
        fid_infinity(np.zeros((19, 4)), np.zeros(4), np.eye(4))


def test_protocol_check_says_same_for_one_build_and_names_the_patch_protocol_otherwise(runs, tmp_path):
    import shutil

    finished, _ = runs
    asd, ar_tile = finished["asd"], finished["ar-tile"]
    record, digest, same = api.protocol(asd.out, ar_tile.out)
    assert same == [] and digest == asd.results["protocol_hash"] == ar_tile.results["protocol_hash"]
    assert record["references"]["manifest_sha256"] == asd.results["dataset"]["manifest_hash"]
    assert record["images"] == 4 and record["extractors"]["inception"]["weights"] == "random (seed 0)"
    other = shutil.copytree(ar_tile.out, tmp_path / "ar-tile-random5")
    api.score([other], patch_protocol="random:5")
    differing = api.protocol(asd.out, other)[2]
    assert "patch_protocol" in differing and api.protocol(other)[1] != digest
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["protocol", str(asd.out), "--check", str(ar_tile.out)]) == 0
        assert main(["protocol", str(asd.out), "--check", str(other)]) == 1
    assert printed.getvalue().splitlines()[0] == "same" and "patch_protocol" in printed.getvalue().splitlines()[1]


def test_the_report_shows_paired_differences_of_a_tiled_method_and_its_twin(runs):
    finished, folder = runs
    api.report(folder, folder / "paired-reports")
    text = (folder / "paired-reports" / "tiny.md").read_text()
    section = text.split("## Paired differences")[1].split("\n## ")[0]
    row = next(line for line in section.splitlines() if line.startswith("| asd vs ar-tile "))
    fid = api.diff(finished["asd"].out, finished["ar-tile"].out)["fid"]
    assert f"{fid['difference']:.4g} [{fid['low']:.4g}, {fid['high']:.4g}]" in row
