"""The timing guard against references: stage I beside diffusers' pipeline, the tiling engine beside its denoiser."""

import statistics
import subprocess
import sys
import time

import pytest

from baselines.models import load_text_to_image, load_upscaler
from baselines.stage2 import X4UpscalerBackbone
from baselines.tiling import TiledDenoiser
from benchmark import api
from benchmark.regression import compare, tolerances
from benchmark.runs import reference_timing
from benchmark.runs.reference_timing import (REPEATS, SETTINGS, STAGE1_VS_DIFFUSERS, TILING_OVERHEAD,
                                             stage1_vs_diffusers, tiling_overhead, timing_path)
from benchmark.runs.records import write_json
from tests.helpers import CPU

GUARDED = f"reference: {TILING_OVERHEAD}"


def test_stage_one_is_timed_against_a_diffusers_pipeline_that_makes_the_same_image(single_thread):
    timing = stage1_vs_diffusers(load_text_to_image("tiny", CPU), (128, 192), steps=2, seed=3, repeats=1)
    assert timing["max_abs_difference"] < 1e-5
    assert timing["ratio"] == pytest.approx(timing["ours_s"] / timing["reference_s"])


def spin(seconds: float):
    """``seconds`` of this thread's CPU time, spent working: on a CPU the guard times CPU time, in which a sleep
    would not count; a wall-clock spin on a loaded machine, or one ended by the process's clock while other
    threads of it run, would count for less than asked."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class SlowTiledDenoiser(TiledDenoiser):
    """The engine with an injected slowdown of each step (a stand-in for a slower tiled loop)."""

    def __call__(self, *args, **kwargs):
        spin(0.1)
        return super().__call__(*args, **kwargs)


def _guard(baseline_ratio: float, ratio: float, runs, name: str = TILING_OVERHEAD) -> bool:
    write_json(timing_path(runs, "tiny"), {"ratios": {name: ratio}})
    baseline = {"profile": "tiny", "tolerances": tolerances(), "runs": {},
                "time_ratios": {f"reference: {name}": baseline_ratio}}
    (check,) = compare(baseline, [], runs)
    assert check.figure == f"reference: {name}"
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


@pytest.mark.parametrize("name", [STAGE1_VS_DIFFUSERS, TILING_OVERHEAD])
def test_time_is_held_from_above_only_our_code_faster_than_the_reference_passes(tmp_path, name):
    assert _guard(1.04, 0.80, tmp_path, name)  # stage I's ratio as CI once measured it beside the tests
    assert _guard(1.04, 1.05, tmp_path, name)
    assert not _guard(1.04, 1.25, tmp_path, name)


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


def _busy_loops(count: int = 1) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def test_the_stage_one_guard_holds_beside_a_busy_loop_and_fails_on_a_30_percent_slower_stage_one(
        tmp_path, monkeypatch, single_thread):
    """The guard's own settings (its size and steps, one thread, warm-up, fastest of 10 in CPU time): what CI runs.

    Beside one busy loop: in CI this test shares two cores with the other worker and the guard, so that is four
    processes on two cores, more than the guard itself meets (three). With two loops (five on two) the loaded ratio
    once read 1.278 against a quiet 1.086, past the 15 % tolerance: at that load CPU time is not load-free.

    The quiet, the 30 % slower and the loaded stage I are timed in alternating rounds, each round a ratio of runs a
    moment apart, and each condition's ratio is the median of its rounds', so that a load that comes and goes beside
    the tests (CI's guard, other workers) meets all three alike and drifts out of each ratio. Timed one after the
    other, a loaded quiet ratio (1.15 for 0.94) once hid the slowdown; as fastest runs pooled over rounds, a quiet
    ratio of 0.910 once failed the guard against a loaded 1.055 on unchanged code: this machine's times drift by
    ±10 % from one second to the next while a ratio of runs a moment apart stays within a few per cent."""
    models = load_text_to_image("tiny", CPU)
    fast, slow, rounds = reference_timing.generate, {"now": False}, 5

    def maybe_slower(*args, **kwargs):  # the same work, 30 % more CPU time while slow["now"]
        start = time.process_time()
        result = fast(*args, **kwargs)
        if slow["now"]:
            spin(0.3 * (time.process_time() - start))
        return result

    def timed() -> dict:
        return stage1_vs_diffusers(models, SETTINGS["stage1_size"], steps=SETTINGS["stage1_steps"], seed=5,
                                   repeats=REPEATS // rounds)

    def loaded() -> dict:
        loops = _busy_loops()
        try:
            return timed()
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()

    monkeypatch.setattr(reference_timing, "generate", maybe_slower)
    runs = {"quiet": [], "slowed": [], "loaded": []}
    for _ in range(rounds):
        for condition, slow["now"], time_it in (("quiet", False, timed), ("slowed", True, timed),
                                                 ("loaded", False, loaded)):
            runs[condition].append(time_it())
    ratio = {condition: statistics.median(run["ratio"] for run in timings) for condition, timings in runs.items()}
    assert not _guard(ratio["quiet"], ratio["slowed"], tmp_path, STAGE1_VS_DIFFUSERS), ratio
    assert _guard(ratio["quiet"], ratio["loaded"], tmp_path, STAGE1_VS_DIFFUSERS), ratio


def test_ratios_of_two_runs_seconds_are_shown_but_no_longer_held(tmp_path):
    baseline = {"profile": "tiny", "tolerances": tolerances(), "runs": {},
                "time_ratios": {"asd ÷ ar-tile (implicit ÷ no overlap)": 0.96}}
    (check,) = compare(baseline, [], tmp_path)
    assert check.ok and check.current == "not tracked"
