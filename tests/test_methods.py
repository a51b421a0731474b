"""The methods on the tiny profile: the registered set, exact sizes with their records and costs, tile plans,
sizes rounded up and cropped back, colour fixes."""

import json

import pytest
import torch
from PIL import Image

from helpers import load_sampler

from baselines.pipeline import Stages
from baselines.registry import get_method, methods
from baselines.settings import Seeds, Settings, centre_crop, nearest_bucket, working_size
from baselines.stage1 import multidiffusion_tiling
from baselines.stage2 import adain, paper_tiling, wavelet
from benchmark import api
from benchmark.runs.model_job import ModelJob
from benchmark.runs.runner import run
from benchmark.runs.samples import plan_samples
from benchmark.spec import RunSpec
from datasets_fixtures import make_dataset

SIZES = ((604, 640), (1024, 256))
QUICK = dict(steps=2, sr_steps=2, progress=False, score=False)
BUILT_IN = [name for name, method in methods().items() if method.built_in]
STAGED = [name for name in BUILT_IN if isinstance(get_method(name).load, Stages)]  # the paper's methods and md


def stages_of(name: str) -> Stages:
    """A built-in method's stages (what its ``load`` is)."""
    stages = get_method(name).load
    assert isinstance(stages, Stages)
    return stages


def test_the_built_in_methods_are_the_papers_eight_fstd_in_stage_one_and_four_training_free_ones():
    assert BUILT_IN == ["sr-plus", "sr-tile", "sr-tile-plus", "ar-plus", "ar-tile", "asd", "md", "fstd-t2i", "fstd",
                        "hidiffusion", "scalecrafter", "scalecrafter-disperse", "scalecrafter-release",
                        "demofusion", "i-max"]


@pytest.mark.parametrize("name", STAGED)
def test_every_method_writes_images_of_exactly_the_requested_sizes_with_costs(tmp_path, name):
    method, stages = get_method(name), stages_of(name)
    pipeline = load_sampler(name, Settings(steps=1, sr_steps=2))
    plan = plan_samples(str(make_dataset(tmp_path / "set", SIZES)), tmp_path, prompt="a harbour at dawn")
    job = ModelJob(method, pipeline, plan, seed=1)
    results = run(job, len(SIZES), tmp_path / "run", progress=False)
    tmp_path = tmp_path / "run"

    for index, size in enumerate(SIZES):
        with Image.open(tmp_path / "samples" / f"{index:05d}.image.png") as image:
            assert image.size == (size[1], size[0])
    assert results["profile"] == "tiny" and results["method"] == name
    assert results["seconds_per_image"] > 0 and results["peak_memory_mib"] > 0
    assert "random (seed 0" in json.dumps(results["weights"])
    assert (results["stage1_unet_calls_per_image"] > 0) == (stages.base is not None)
    assert (results["stage2_denoiser_calls_per_image"] > 0) == (method.stage2 is not None)
    assert results["backbone"] == ("SD x4 upscaler" if method.stage2 else None)
    rows = results["per_image"]
    assert [row["size"] for row in rows] == [list(size) for size in SIZES]
    assert all(row["seconds"] > 0 and row["peak_memory_mib"] > 0 for row in rows)
    records = [json.loads((tmp_path / "samples" / f"{i:05d}.json").read_text()) for i in range(len(SIZES))]
    if stages.base and stages.stage1 != "bucket":  # SD's VAE: 604 px is worked at 608, then cut
        assert records[0]["stage1"]["size"] == [608, 640] and records[0]["output"]["cropped"]
    if stages.stage1 == "bucket":
        assert [r["stage1"]["size"] for r in records] == [[512, 512], [1024, 512]]
    if stages.stage1 == "multidiffusion":
        assert records[0]["stage1"]["tiling"] == multidiffusion_tiling().as_record()
        assert records[0]["stage1"]["tile_evaluations"] == 3 * 3  # 76x80 latent, views 64 at stride 8
    if name == "fstd":
        with Image.open(tmp_path / "samples" / "00000.hr.png") as high:  # scored later, by benchmark.metrics.scoring
            assert high.size == (640, 604)
        with Image.open(tmp_path / "samples" / "00000.lr.png") as low:
            assert low.size == (160, 151)


@pytest.mark.parametrize("name, strategy", [("sr-tile", "nonoverlap"), ("asd", "implicit")])  # ar-tile, sr-tile-plus:
# the same stage II, declared by their Stages (test_every_method_writes_images... runs each)
def test_stage_two_tile_plans_are_non_overlap_or_implicit(tmp_path, name, strategy):
    api.run(RunSpec(name, size=(768, 1024), limit=1, out=tmp_path, **{**QUICK, "sr_steps": 4}))
    plan = json.loads((tmp_path / "samples" / "00000.json").read_text())["stage2"]["tile_plan"]
    assert plan["strategy"] == strategy
    assert plan["tile"] == 128 and plan["tile_px"] == 512  # the paper's 512 px tiles at x4
    assert plan["tiles_per_step"] == 4  # 192x256 latent
    shifted = [offset for offset in plan["offsets"] if offset != [0, 0]]
    assert (len(shifted) > 0) == (strategy == "implicit")


def test_sizes_round_up_to_what_a_model_needs_and_crop_back():
    assert working_size((900, 1024), 8) == (904, 1024) and working_size((65, 67), 4) == (68, 68)
    assert nearest_bucket((900, 1024)) == (512, 512) and nearest_bucket((1024, 256)) == (1024, 512)
    image, (top, left) = centre_crop(torch.zeros(1, 3, 904, 1030), (900, 1024))
    assert image.shape[-2:] == (900, 1024) and (top, left) == (2, 3)
    assert paper_tiling("implicit", 4).as_record() == {
        "strategy": "implicit", "tile": 128, "weighting": "gaussian", "offset": "random",
        "offset_range": 64, "reset_every": 4, "fill": "eps", "tile_batch_size": 1}


def test_an_odd_size_comes_out_exact_through_both_stages(tmp_path):
    pipeline = load_sampler("sr-tile-plus", Settings(steps=1, sr_steps=2))
    image, record = pipeline("a kite", (65, 203), Seeds(1, 2, 3))
    assert image.shape[-2:] == (65, 203)
    assert record.stage2.size == (68, 204) and record.cropped and record.crop.working_size == (68, 204)


def test_colour_fixes_take_colour_from_the_reference():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((1, 3, 64, 64), generator=generator) * 0.5 - 0.5
    reference = torch.rand((1, 3, 64, 64), generator=generator) * 0.8
    fixed = adain(image, reference)
    torch.testing.assert_close(fixed.mean((-2, -1)), reference.mean((-2, -1)), atol=1e-4, rtol=0)
    torch.testing.assert_close(fixed.std((-2, -1)), reference.std((-2, -1)), atol=1e-3, rtol=0)
    flat = torch.full_like(image, 0.3)
    torch.testing.assert_close(wavelet(flat, reference).mean(), reference.mean(), atol=2e-2, rtol=0)
    torch.testing.assert_close(wavelet(image, image), image)
