"""The metric registry: built-ins, metrics registered from outside, and how `score_run` reports them.

The runs here are written directly (images, sample records, results.json) on a tiny data
set, so scoring them takes seconds and does not depend on the pipelines."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from benchmark import metrics
from benchmark.metrics import registry
from benchmark.metrics.registry import (SUPER_RESOLUTION, TEXT_TO_IMAGE, MetricValue, NotApplicable, get_metric,
                                        metric_names, register_metric, tolerances, unregister_metric)
from benchmark.metrics.scoring import score_run
from datasets_build.manifest import MANIFEST
from datasets_fixtures import gradient, make_dataset
from helpers import CPU

SIZES = [(64, 96), (64, 64), (96, 64), (64, 96)]
SR_CONDITIONING = "the data set's LR images (or HR downscaled by the SR factor)"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("mini"), SIZES)


def write_run(out, dataset, *, task=None, conditioning="captions", oom=()):
    """A finished tiny model run in ``out``: one image per data set item (a gradient of another seed)."""
    (out / "samples").mkdir(parents=True)
    rows = []
    for index, (height, width) in enumerate(SIZES):
        if index in oom:
            rows.append({"index": index, "image": None, "size": [height, width], "status": "oom"})
            continue
        image = f"samples/{index:05d}.png"
        gradient(width, height, seed=100 + index).save(out / image)
        gradient(width, height, seed=index).save(out / "samples" / f"{index:05d}.hr.png")
        (out / "samples" / f"{index:05d}.json").write_text(json.dumps({"prompt": f"a gradient number {index}"}))
        rows.append({"index": index, "image": image, "size": [height, width], "status": "ok"})
    results = {"method": "test-method", "profile": "tiny", "conditioning": conditioning, "per_image": rows,
               "dataset": {"name": "mini", "folder": str(dataset), "items": len(SIZES),
                           "manifest_hash": metrics.manifest_hash([], dataset / MANIFEST)}}
    if task:
        results["task"] = task
    (out / "results.json").write_text(json.dumps(results))
    return out


@contextmanager
def registered(*names):
    """Unregister ``names`` afterwards, whatever happens."""
    try:
        yield
    finally:
        for name in names:
            if name in metric_names():
                unregister_metric(name)


def test_the_built_ins_come_first_with_the_regression_tolerances_and_report_columns():
    assert metric_names()[:13] == ("fid", "kid", "fid_patch", "kid_patch", "inception_score", "clip_score", "psnr_y",
                                   "ssim_y", "lpips", "seam_score", "glcm_score", "compression_ratio", "repetition")
    assert all(metric.origin == "built-in" for metric in registry.metrics()[:13])
    assert tolerances()["scores.fid"] == {"rel": 0.02}
    assert tolerances()["scores.kid"] == {"rel": 0.02, "abs": 1e-3}
    assert tolerances()["scores.lpips"] == {"abs": 0.005}
    assert registry.report_columns() == [("kid", "KID↓", 4), ("fid_patch", "patch FID↓", 2),
                                         ("kid_patch", "patch KID↓", 4), ("glcm_score", "GLCM↑", 3),
                                         ("compression_ratio", "compression↓", 2), ("repetition", "repetition↓", 2),
                                         ("musiq", "MUSIQ↑", 2), ("maniqa", "MANIQA↑", 3), ("clipiqa", "CLIP-IQA↑", 3)]
    assert get_metric("seam_score").needs_stage2_tiles and get_metric("fid").needs_references
    assert get_metric("clip_score").applies_to == {TEXT_TO_IMAGE}
    assert get_metric("psnr_y").applies_to == {SUPER_RESOLUTION}


def test_a_name_clash_an_unknown_name_and_removing_a_built_in_are_refused():
    with pytest.raises(ValueError, match=r"metric 'fid' from .* clashes: 'fid' is already registered \(built-in\); choose another name"):
        register_metric("fid")(lambda context: 1.0)
    with pytest.raises(ValueError, match="'kid_std' is already used"):
        register_metric("kid_std")(lambda context: 1.0)
    with registered("twice"):
        @register_metric()
        def twice(context):
            return 1.0

        assert get_metric("twice").origin == __name__
        with pytest.raises(ValueError, match=rf"'twice' is already registered \({__name__}\)"):
            register_metric("twice")(lambda context: 2.0)
    assert "twice" not in metric_names()
    with pytest.raises(ValueError, match="unknown metric 'nope'; registered: fid, kid"):
        get_metric("nope")
    with pytest.raises(ValueError, match="built-in"):
        unregister_metric("fid")
    with pytest.raises(ValueError, match="applies_to"):
        register_metric("odd", applies_to={"video"})


def test_the_task_of_a_run_is_recorded_or_read_from_its_conditioning():
    assert registry.run_task({"task": SUPER_RESOLUTION, "conditioning": "captions"}) == SUPER_RESOLUTION
    assert registry.run_task({"conditioning": SR_CONDITIONING}) == SUPER_RESOLUTION
    assert registry.run_task({"conditioning": "captions"}) == TEXT_TO_IMAGE
    assert registry.run_task({}) == TEXT_TO_IMAGE


def test_registered_metrics_are_scored_skipped_or_recorded_as_failed(tmp_path, dataset):
    seen = {}

    @register_metric(applies_to={TEXT_TO_IMAGE}, tolerance={"abs": 1.0}, higher_is_better=True)
    def mean_red(context):
        seen["task"], seen["generated"] = context.task, context.generated
        reds = [float(np.asarray(Image.open(image))[..., 0].mean()) for image in context.images]
        return MetricValue(float(np.mean(reds)), context.convention("numpy", "mean of R", None, None),
                           extra={"mean_red_max": max(reds)}, per_image=reds)

    @register_metric("image_count")
    def count(context):
        return len(context.images)  # a bare number: wrapped with empty conventions

    @register_metric(applies_to=(SUPER_RESOLUTION,))
    def only_sr(context):
        raise AssertionError("never called on a text-to-image run")

    @register_metric()
    def not_here(context):
        raise NotApplicable("needs a moon")

    @register_metric()
    def broken(context):
        raise RuntimeError("boom")

    with registered("mean_red", "image_count", "only_sr", "not_here", "broken"):
        assert registry.tolerances()["scores.mean_red"] == {"abs": 1.0}
        results = score_run(write_run(tmp_path / "run", dataset), CPU)
        assert results == json.loads((tmp_path / "run" / "results.json").read_text())
    scores, skipped = results["scores"], results["scores"]["skipped"]
    assert seen["task"] == TEXT_TO_IMAGE and seen["generated"] is not None
    rows = results["per_image"]
    assert scores["mean_red"] == pytest.approx(np.mean([row["mean_red"] for row in rows]))
    assert scores["mean_red_max"] == max(row["mean_red"] for row in rows)
    assert results["metric_conventions"]["mean_red"]["library"] == "numpy"
    assert results["metric_conventions"]["mean_red"]["note"] == "random weights: not image quality"
    assert scores["image_count"] == 4.0 and results["metric_conventions"]["image_count"] == {}
    assert scores["only_sr"] is None
    assert skipped["only_sr"] == "only_sr applies to super-resolution runs; this run is text-to-image"
    assert scores["not_here"] is None and skipped["not_here"] == "needs a moon"
    assert scores["broken"] is None and skipped["broken"] == "failed: RuntimeError: boom"
    # the built-ins are all there, as before
    for metric in ("fid", "kid", "inception_score", "clip_score"):
        assert math.isfinite(scores[metric]), metric
    assert scores["kid_std"] is not None and list(scores["fid_per_ratio"]) == ["64x96"]
    assert "64x64" in skipped["fid_per_ratio"] and "64x64" in skipped["kid_per_ratio"]
    assert "299-px crop" in skipped["fid_patch"] and skipped["kid_patch"] == skipped["fid_patch"]
    assert scores["kid_patch_std"] is None
    assert skipped["psnr_y"] == "text-to-image: no ground-truth image per sample"
    assert skipped["seam_score"] == "test-method has no stage II tiles"
    assert list(results["metric_conventions"])[:3] == ["fid", "kid", "inception_score"]


def test_a_super_resolution_run_gets_fidelity_per_image_and_no_clip_score(tmp_path, dataset):
    results = score_run(write_run(tmp_path / "run", dataset, conditioning=SR_CONDITIONING), CPU)
    scores = results["scores"]
    for metric in ("psnr_y", "ssim_y", "lpips", "fid", "kid", "inception_score"):
        assert math.isfinite(scores[metric]), metric
    assert scores["clip_score"] is None
    assert scores["skipped"]["clip_score"] == "super-resolution: its images follow the LR input, not the caption"
    rows = results["per_image"]
    assert scores["psnr_y"] == pytest.approx(np.mean([row["psnr_y"] for row in rows]))
    assert all(math.isfinite(row["lpips"]) and math.isfinite(row["ssim_y"]) for row in rows)
    assert results["metric_conventions"]["psnr_y"]["library"] == "scikit-image"
    assert results["metric_conventions"]["lpips"]["random_weights"]


def test_a_run_without_references_and_one_without_images(tmp_path, dataset):
    @register_metric(needs_references=True)
    def against_references(context):
        raise AssertionError("never called without references")

    with registered("against_references"):
        out = write_run(tmp_path / "gone", dataset, task=TEXT_TO_IMAGE)
        results = json.loads((out / "results.json").read_text())
        results["dataset"]["manifest_hash"] = "0" * 64
        (out / "results.json").write_text(json.dumps(results))
        scores = score_run(out, CPU)["scores"]
        assert "rebuilt since the run" in scores["skipped"]["fid"]
        for metric in ("kid", "fid_patch", "kid_patch", "fid_per_ratio", "kid_per_ratio", "fid_infinity",
                       "against_references"):
            assert scores["skipped"][metric] == scores["skipped"]["fid"], metric
        assert scores["fid_per_ratio"] == {} and scores["kid_std"] is None and math.isfinite(scores["clip_score"])

        scores = score_run(write_run(tmp_path / "oom", dataset, oom=range(4)), CPU)["scores"]
        assert set(scores) == {m.name for m in registry.chosen_metrics()} | {"kid_std", "kid_patch_std", "fid_per_ratio", "kid_per_ratio",
                                                     "fid_infinity", "patch_protocol", "skipped", "oom_samples_skipped",
                                                     "failed_samples_skipped", "images", "intervals", "bootstrap"}
        assert scores["against_references"] is None and scores["oom_samples_skipped"] == 4
        assert "all 4 samples ran out of memory" in scores["skipped"]["against_references"]
        run = write_run(tmp_path / "failed", dataset, oom=range(4))
        results = json.loads((run / "results.json").read_text())
        for row in results["per_image"][:3]:
            row["status"] = "failed"  # e.g. an image of the wrong size
        (run / "results.json").write_text(json.dumps(results))
        scores = score_run(run, CPU)["scores"]
        assert scores["skipped"]["fid"] == "no finished image: 3 failed, 1 ran out of memory"
        assert (scores["oom_samples_skipped"], scores["failed_samples_skipped"]) == (1, 3)  # apart, not all as OOM
