"""Model runs on a data set: the sample plan, --dataset, scoring after a run and `score`."""

import json
import math
import random

import numpy as np
import pytest
from PIL import Image

from benchmark import api
from benchmark.runs.runner import RunMismatchError
from benchmark.spec import RunSpec
from benchmark.runs.samples import spread_order
from datasets_build import MA_SIZES, DatasetError, Item
from datasets_fixtures import make_dataset

QUICK = dict(steps=2, sr_steps=2, progress=False)
SIZES = [(128, 192), (128, 128), (192, 128), (128, 192)]  # two wide items: one per-ratio FID


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("mini"), SIZES)


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, dataset):
    out = tmp_path_factory.mktemp("runs") / "sr-tile"
    api.run(RunSpec("sr-tile", dataset=str(dataset), limit=4, out=out, **QUICK))
    return out


def _results(out):
    return json.loads((out / "results.json").read_text())


def _items(sizes, per_size=1):
    return [Item(f"{s.height}x{s.width}-{k}", "c", s.height, s.width, None, None)
            for s in sizes for k in range(per_size)]


def test_the_plan_spreads_any_prefix_over_shapes_deterministically():
    items = _items(MA_SIZES, per_size=2)
    order = spread_order(items)
    shuffled = items[:]
    random.Random(0).shuffle(shuffled)
    assert spread_order(shuffled) == order
    assert [(i.height, i.width) for i in order[:3]] == [(256, 1024), (768, 1024), (1024, 256)]
    first_round = order[:len(MA_SIZES)]
    assert len({(i.height, i.width) for i in first_round}) == len(MA_SIZES)  # every size before any repeats
    assert all(i.id.endswith("-0") for i in first_round) and all(i.id.endswith("-1") for i in order[21:])
    ratios = [i.height / i.width for i in order[:6]]
    assert min(ratios) < 0.75 and max(ratios) > 4 / 3 and any(0.75 <= r <= 4 / 3 for r in ratios)


def test_a_tiny_run_is_scored_with_the_agreed_schema(scored_run, dataset):
    results = _results(scored_run)
    scores = results["scores"]
    assert set(scores) == {"fid", "kid", "kid_std", "fid_patch", "kid_patch", "kid_patch_std", "inception_score",
                           "clip_score", "psnr_y", "ssim_y", "lpips", "seam_score", "glcm_score", "compression_ratio",
                           "repetition", "hpsv2", "pickscore", "image_reward", "fid_per_ratio", "kid_per_ratio",
                           "patch_protocol", "skipped",
                           "oom_samples_skipped", "failed_samples_skipped", "images",
                           "intervals", "bootstrap", "fid_infinity"}
    assert scores["oom_samples_skipped"] == scores["failed_samples_skipped"] == 0 and scores["images"] == 4
    for metric in ("fid", "kid", "inception_score", "clip_score", "seam_score", "glcm_score", "compression_ratio",
                   "repetition"):
        assert math.isfinite(scores[metric]), metric
    assert list(scores["fid_per_ratio"]) == ["128x192"] and math.isfinite(scores["fid_per_ratio"]["128x192"])
    assert list(scores["kid_per_ratio"]) == ["128x192"] and math.isfinite(scores["kid_per_ratio"]["128x192"])
    assert "128x128" in scores["skipped"]["fid_per_ratio"]
    # images below the 299-px crop: no patch score, and the reason says so
    assert scores["patch_protocol"] == "grid" and scores["fid_patch"] is None and scores["kid_patch"] is None
    assert scores["skipped"]["fid_patch"].startswith("not applicable") and "299-px crop" in scores["skipped"]["fid_patch"]
    assert "128x192" in scores["skipped"]["kid_patch"]
    assert scores["psnr_y"] is None and "psnr_y" in scores["skipped"]
    assert results["dataset"]["name"] == "mini" and results["dataset"]["items"] == 4
    assert results["dataset"]["folder"] == str(dataset.resolve()) and len(results["dataset"]["manifest_hash"]) == 64
    assert results["metrics_profile"] == "tiny"
    conventions = results["metric_conventions"]
    assert conventions["fid"]["random_weights"] and "not image quality" in conventions["fid"]["note"]
    assert conventions["inception_score"]["splits"] == 4  # fewer images than 10 splits
    assert [row["size"] for row in results["per_image"]] == [[128, 192], [128, 128], [192, 128], [128, 192]]


def test_score_recomputes_the_same_numbers(scored_run):
    before = _results(scored_run)["scores"]
    (finished,) = api.score([scored_run])
    assert finished.out == scored_run and finished.results["scores"] == before
    assert _results(scored_run)["scores"] == before


def test_fstd_is_scored_on_the_sets_lr_hr_pairs(tmp_path, dataset):
    api.run(RunSpec("fstd", "tiny", dataset=str(dataset), limit=2, out=tmp_path, **QUICK))
    results = _results(tmp_path)
    scores = results["scores"]
    for metric in ("psnr_y", "ssim_y", "lpips", "fid", "kid"):
        assert math.isfinite(scores[metric]), metric
    assert scores["clip_score"] is None and "clip_score" in scores["skipped"]
    assert all(math.isfinite(row["psnr_y"]) and math.isfinite(row["lpips"]) for row in results["per_image"])
    with Image.open(tmp_path / "samples" / "00000.lr.png") as low, Image.open(dataset / "lr" / "mini-000.png") as lr:
        assert np.array_equal(np.asarray(low), np.asarray(lr))  # the set's LR image is the input


def test_no_score_and_a_replaced_prompt(tmp_path, dataset):
    api.run(RunSpec("sr-plus", dataset=str(dataset), limit=1, score=False, out=tmp_path / "a", **QUICK))
    assert "scores" not in _results(tmp_path / "a")
    api.run(RunSpec("sr-plus", dataset=str(dataset), limit=2, prompt="a kite", out=tmp_path / "b", **QUICK))
    scores = _results(tmp_path / "b")["scores"]
    assert scores["fid"] is None and "--prompt replaced" in scores["skipped"]["fid"]
    for metric in ("kid", "fid_patch", "kid_patch"):  # every reference-based score says why it is missing
        assert scores[metric] is None and scores["skipped"][metric] == scores["skipped"]["fid"]
    assert math.isfinite(scores["clip_score"])


def test_a_data_set_by_name_and_resuming_with_another_is_refused(tmp_path, asd_cache, dataset):
    make_dataset(asd_cache / "datasets" / "ma-coco", SIZES[:2], name="ma-coco")
    out = tmp_path / "run"
    api.run(RunSpec("sr-plus", dataset="ma-coco", limit=1, score=False, out=out, **QUICK))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]["name"] == "ma-coco"
    with pytest.raises(RunMismatchError, match="other parameters"):
        api.run(RunSpec("sr-plus", dataset=str(dataset), limit=1, score=False, out=out, **QUICK))


@pytest.mark.parametrize("spec, message", [("no-such-set", "neither a folder nor a data set name"),
                                           ("EMPTY", "is not a finished build")])
def test_bad_data_sets_are_refused_with_one_clear_message(tmp_path, spec, message):
    if spec == "EMPTY":
        spec = str(tmp_path / "empty")
        (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as error:
        api.run(RunSpec("sr-plus", dataset=spec, out=tmp_path / "run", **QUICK))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_score_refuses_a_directory_without_a_run(tmp_path):
    with pytest.raises(ValueError, match="no finished run"):
        api.score([tmp_path])
