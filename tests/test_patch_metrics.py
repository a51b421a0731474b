"""Patch FID / KID: crop protocols counted by hand, seeded crops, a set against itself, and the
patch scores of a finished run (recorded protocol, reference resolution, cache by protocol).
Images below the crop size are tests/test_scoring.py's run (not applicable, with the reason)."""
import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

import benchmark.metrics as metrics
from benchmark.spec import RunSpec
from benchmark import api
from benchmark.cli import main
from benchmark.metrics import PatchProtocol
from datasets_fixtures import gradient, make_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def inception():
    return metrics.load_inception("tiny", device="cpu")


def test_grid_crops_of_700_by_1000_are_the_hand_count():
    """First pass: tops 0, 299 (598 + 299 > 700), lefts 0, 299, 598 (897 + 299 > 1000): 2 x 3.
    Shifted pass, from 149: tops 149 (448 + 299 > 700), lefts 149, 448 (747 + 299 > 1000): 1 x 2."""
    boxes = PatchProtocol.parse("grid").boxes(700, 1000, index=0)
    first = [(t, l) for t in (0, 299) for l in (0, 299, 598)]
    shifted = [(149, 149), (149, 448)]
    assert boxes == first + shifted and len(boxes) == 8
    assert PatchProtocol().shift == 149


@pytest.mark.parametrize("size, count", [((299, 299), 1), ((298, 1000), 0), ((448, 448), 2), ((447, 447), 1),
                                         ((1024, 1024), 3 * 3 + 2 * 2), ((256, 1024), 0)])
def test_grid_counts_at_the_edges(size, count):
    """448 = 149 + 299 is the smallest side that holds a shifted crop; below 299 there is none."""
    boxes = PatchProtocol().boxes(*size, index=0)
    assert len(boxes) == count
    assert all(0 <= t <= size[0] - 299 and 0 <= l <= size[1] - 299 for t, l in boxes)


def test_random_crops_are_seeded_per_image():
    protocol = PatchProtocol.parse("random:5")
    assert (protocol.per_image, protocol.seed, protocol.label) == (5, 0, "random:5:0")
    boxes = protocol.boxes(700, 1000, index=3)
    assert len(boxes) == 5 and all(0 <= t <= 401 and 0 <= l <= 701 for t, l in boxes)
    assert protocol.boxes(700, 1000, index=3) == boxes  # same seed, same image: same crops
    assert PatchProtocol.parse("random:5:0") == protocol
    assert PatchProtocol.parse("random:5:1").boxes(700, 1000, index=3) != boxes  # another seed
    assert protocol.boxes(700, 1000, index=4) != boxes  # another image of the set
    assert protocol.boxes(200, 1000, index=3) == []
    for bad in ("random", "random:0", "random:x", "grid:2", "tiles"):
        with pytest.raises(ValueError, match="grid"):
            PatchProtocol.parse(bad)


def test_crop_summary_counts_images_and_records_the_resolution():
    summary = metrics.crop_summary([(700, 1000), (256, 1024), (700, 1000)], PatchProtocol())
    assert summary == {"images": 3, "crops": 16, "images_without_crops": 1,
                       "resolution": {"256x1024": 1, "700x1000": 2}}


def test_patch_fid_of_a_set_against_itself_is_zero(tmp_path, inception, single_thread):
    images = [np.asarray(gradient(640, 320, seed)) for seed in range(3)]  # 2 grid crops each
    protocol = PatchProtocol()
    reference = metrics.reference_stats(images, "set", tmp_path, inception, protocol=protocol)
    generated = metrics.patch_outputs(images, inception, protocol)
    assert reference.count == len(generated.features) == 6
    assert generated.conventions["crops"]["protocol"] == "grid" and generated.conventions["crops"]["crop_px"] == 299
    assert abs(metrics.fid_score(generated, reference)["value"]) < 1e-6

    # the crops are the images' own pixels: the crop at (0, 299) of image 1 is what Inception saw
    single = metrics.inception_outputs([images[1][0:299, 299:598]], inception)
    np.testing.assert_allclose(generated.features[3], single.features[0], rtol=1e-5, atol=1e-6)

    others = [np.asarray(gradient(640, 320, seed)) for seed in range(3, 6)]
    assert metrics.fid_score(metrics.patch_outputs(others, inception, protocol), reference)["value"] > 1e-3

    assert metrics.reference_stats(images, "set", tmp_path, inception, protocol=protocol).from_cache
    random = metrics.reference_stats(images, "set", tmp_path, inception, protocol=PatchProtocol.parse("random:2"))
    assert not random.from_cache and random.cache_path != reference.cache_path  # cached by protocol too
    with pytest.raises(ValueError, match="extracted differently"):  # crops of another protocol never mix
        metrics.fid_score(generated, random)


SIZES = [(320, 640), (384, 384), (320, 640), (256, 256)]


@pytest.fixture(scope="module")
def patch_run(tmp_path_factory):
    dataset = make_dataset(tmp_path_factory.mktemp("patches"), SIZES, name="patchset")
    out = tmp_path_factory.mktemp("runs") / "sr-plus"
    api.run(RunSpec("sr-plus", dataset=str(dataset), limit=4, out=out, steps=1, progress=False))
    return out


def _results(out):
    return json.loads((out / "results.json").read_text())


def test_a_run_records_patch_scores_their_protocol_and_the_reference_resolution(patch_run):
    results = _results(patch_run)
    scores, conventions = results["scores"], results["metric_conventions"]
    for metric in ("fid", "kid", "fid_patch", "kid_patch", "kid_std", "kid_patch_std"):
        assert math.isfinite(scores[metric]), metric
    assert scores["patch_protocol"] == "grid"
    patch = conventions["fid_patch"]
    assert patch["crops"]["protocol"] == "grid" and patch["random_weights"]
    assert patch["generated_crops"] == {"images": 4, "crops": 5, "images_without_crops": 1,
                                        "resolution": {"256x256": 1, "320x640": 2, "384x384": 1}}
    assert patch["reference_crops"] == patch["generated_crops"] and patch["n_reference"] == 5
    assert conventions["kid_patch"]["subset_size"] == 5 and conventions["kid_patch"]["subsets"] == 100
    assert conventions["kid"]["subset_size"] == 4 and conventions["kid"]["subset_size_requested"] == 1000
    assert list(scores["kid_per_ratio"]) == list(scores["fid_per_ratio"]) == ["320x640"]


def test_score_with_another_protocol_records_it(patch_run):
    grid = _results(patch_run)["scores"]
    (finished,) = api.score([patch_run], patch_protocol="random:3:7")
    assert finished.results == _results(patch_run)
    results = _results(patch_run)
    assert results["scores"]["patch_protocol"] == "random:3:7"
    assert results["metric_conventions"]["kid_patch"]["generated_crops"]["crops"] == 9  # 3 of 4 images hold one
    assert results["metric_conventions"]["fid_patch"]["crops"] == PatchProtocol.parse("random:3:7").as_dict()
    assert results["scores"]["fid"] == grid["fid"] and results["scores"]["fid_patch"] != grid["fid_patch"]
    api.score([patch_run])  # back to grid: the same numbers as before
    assert _results(patch_run)["scores"] == grid


def test_a_bad_protocol_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exit:  # the command line refuses it while parsing
        main(["score", "nowhere", "--patch-protocol", "random:0"])
    assert exit.value.code == 2 and "random:K" in capsys.readouterr().err


def test_a_bad_protocol_is_refused_by_the_api_before_a_run_is_made(tmp_path):
    with pytest.raises(ValueError, match="random:K"):
        PatchProtocol.parse("random:0")
    with pytest.raises(ValueError, match="random:K"):
        api.run(RunSpec("sr-plus", patch_protocol="random:0", out=tmp_path / "run", progress=False))
    assert not (tmp_path / "run").exists()
