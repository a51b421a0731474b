"""The timing guard against references: stage I beside diffusers' pipeline, the tiling engine beside its denoiser."""

import time

import pytest
import torch

from baselines.models import load_text_to_image, load_upscaler
from baselines.stage2 import X4UpscalerBackbone
from baselines.tiling import TiledDenoiser
from benchmark import api
from benchmark.regression import compare, tolerances
from benchmark.runs import reference_timing
from benchmark.runs.reference_timing import TILING_OVERHEAD, stage1_vs_diffusers, tiling_overhead, timing_path
from benchmark.runs.records import write_json
from tests.helpers import CPU

GUARDED = f"reference: {TILING_OVERHEAD}"


def test_stage_one_is_timed_against_a_diffusers_pipeline_that_makes_the_same_image(single_thread):
    timing = stage1_vs_diffusers(load_text_to_image("tiny", CPU), (128, 192), steps=2, seed=3, repeats=1)
    assert timing["max_abs_difference"] < 1e-5
    assert timing["ratio"] == pytest.approx(timing["ours_s"] / timing["reference_s"])


class SlowTiledDenoiser(TiledDenoiser):
    """The engine with an injected slowdown of each step (a stand-in for a slower tiled loop)."""

    def __call__(self, *args, **kwargs):
        time.sleep(0.1)
        return super().__call__(*args, **kwargs)


def _guard(baseline_ratio: float, ratio: float, runs) -> bool:
    write_json(timing_path(runs, "tiny"), {"ratios": {TILING_OVERHEAD: ratio}})
    baseline = {"profile": "tiny", "tolerances": tolerances(), "runs": {}, "time_ratios": {GUARDED: baseline_ratio}}
    (check,) = compare(baseline, [], runs)
    assert check.figure == GUARDED
    return check.ok


def test_the_guard_fails_on_a_slower_tiled_loop_and_holds_on_the_same_code(tmp_path, monkeypatch, single_thread):
    backbone = X4UpscalerBackbone(load_upscaler("tiny", CPU))

    def overhead() -> float:
        return tiling_overhead(backbone, (512, 512), steps=3, strategy="implicit", seed=0, repeats=1)["ratio"]

    before, again = overhead(), overhead()
    monkeypatch.setattr(reference_timing, "TiledDenoiser", SlowTiledDenoiser)
    slower = overhead()
    assert before >= 1 and slower > before
    assert _guard(before, again, tmp_path)
    assert not _guard(before, slower, tmp_path)


def test_a_missing_reference_timing_fails_the_guard(tmp_path):
    baseline = {"profile": "tiny", "tolerances": tolerances(), "runs": {}, "time_ratios": {GUARDED: 1.01}}
    (check,) = compare(baseline, [], tmp_path)
    assert not check.ok and check.current is None


def test_timing_refuses_zero_repeats_and_a_profile_without_models(tmp_path):
    with pytest.raises(ValueError, match="--repeats must be at least 1"):
        api.timing("tiny", repeats=0, runs=tmp_path)
    with pytest.raises(ValueError, match="unknown profile 'oracle'"):
        api.timing("oracle", runs=tmp_path)
    assert not timing_path(tmp_path, "tiny").exists()
