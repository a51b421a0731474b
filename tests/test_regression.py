"""The CI guard: it must fail on a change of outputs and pass on a change that alters none."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest

import benchmark.oracle.study
from benchmark import api, guard
from benchmark.cli import main
from benchmark.runs.records import write_json
from benchmark.regression import compare, identity, make_baseline, render
from benchmark.reporting.report import load_results
from benchmark.spec import RunSpec

STUDY = {"profile": "oracle", "size": [512, 768], "steps": 5, "limit": 1, "progress": False}
SUITE = [{"verb": "study", "args": STUDY}]


def run_suite(runs, **changes):
    api.study(**{**STUDY, "size": tuple(STUDY["size"]), **changes}, runs=runs, reports=runs / "r")
    return load_results(runs)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    runs = tmp_path_factory.mktemp("baseline-runs")
    made = make_baseline(run_suite(runs), "oracle", SUITE)
    made["tolerances"]["time_ratio"] = {"rel": 100.0}  # timing has its own test below
    return made


def failures(baseline, results):
    return {(c.run, c.figure) for c in compare(baseline, results) if not c.ok}


def test_a_change_that_alters_no_output_passes(baseline, tmp_path):
    """The same suite run again in another directory (as a refactoring would): the same
    outputs, so every tracked figure holds."""
    assert failures(baseline, run_suite(tmp_path)) == set()


def test_a_changed_seed_fails(baseline, tmp_path):
    failed = failures(baseline, run_suite(tmp_path, seed=1))
    assert ("fstd/oracle/nonoverlap-t64", "seed") in failed
    assert ("fstd/oracle/nonoverlap-t64", "seam_score") in failed


def test_a_changed_step_count_fails(baseline, tmp_path):
    failed = failures(baseline, run_suite(tmp_path, steps=6))
    assert ("fstd/oracle/none", "steps") in failed
    assert ("fstd/oracle/none", "denoiser_calls_per_sample") in failed


def test_a_changed_tiling_parameter_fails(baseline, tmp_path, monkeypatch):
    original = benchmark.oracle.study.study_rows

    def reset_every_five():
        return [dataclasses.replace(row, tiling=dataclasses.replace(row.tiling, reset_every=5))
                if row.tiling.strategy == "implicit" else row for row in original()]

    monkeypatch.setattr(benchmark.oracle.study, "study_rows", reset_every_five)
    failed = failures(baseline, run_suite(tmp_path))
    implicit = "fstd/oracle/implicit-t64-random-r32-k4-fill-eps"
    assert (implicit, "seam_score") in failed  # the k4 run is gone: reported missing


def test_check_fails_on_a_change_and_passes_without(baseline, tmp_path):
    path = tmp_path / "baseline.json"
    write_json(path, baseline)
    runs = tmp_path / "runs"
    run_suite(runs)
    checks = guard.check(path, runs, run=False)
    assert checks and all(check.ok for check in checks)
    assert "within tolerance" in render(checks, path)
    changed = copy.deepcopy(baseline)
    changed["runs"]["fstd/oracle/none"]["seam_score"] *= 1.01
    write_json(path, changed)
    checks = guard.check(path, runs, run=False)
    assert {(c.run, c.figure) for c in checks if not c.ok} == {("fstd/oracle/none", "seam_score")}
    assert "**FAIL**" in render(checks, path)


def test_the_compare_command_exits_1_on_a_change_and_0_without(baseline, tmp_path, capsys):
    path = tmp_path / "baseline.json"
    write_json(path, baseline)
    runs = tmp_path / "runs"
    run_suite(runs)
    assert main(["compare", "--baseline", str(path), "--runs", str(runs), "--no-run"]) == 0
    assert "within tolerance" in capsys.readouterr().out
    changed = copy.deepcopy(baseline)
    changed["runs"]["fstd/oracle/none"]["seam_score"] *= 1.01
    write_json(path, changed)
    assert main(["compare", "--baseline", str(path), "--runs", str(runs), "--no-run"]) == 1
    assert "**FAIL**" in capsys.readouterr().out


def fake_results(seconds_by_strategy: dict) -> list[dict]:
    """Oracle results that differ only in their strategy and fastest sample's seconds."""
    return [{"method": "fstd", "profile": "oracle", "tiling": {"strategy": strategy},
             "size": [512, 512], "steps": 5, "seed": 0, "samples": 1,
             "seconds_per_sample_min": seconds,
             "environment": {"device": "cpu", "git": {"commit": "x"}, "date": "2026-01-01"}}
            for strategy, seconds in seconds_by_strategy.items()]


def test_seconds_of_runs_are_not_held_but_their_counts_are():
    """Ratios of two runs' seconds moved with other load between the runs: the guard holds the call
    and tile counts instead (time only against references timed beside our code, in one process)."""
    def counted(seconds: dict) -> list[dict]:
        return [dict(result, denoiser_calls_per_sample=10) for result in fake_results(seconds)]

    made = make_baseline(counted({"explicit": 2.0, "implicit": 1.0, "nonoverlap": 1.0}), "oracle", SUITE)
    assert made["time_ratios"] == {}
    assert failures(made, counted({"explicit": 2.0, "implicit": 3.0, "nonoverlap": 1.0})) == set()
    more_calls = counted({"explicit": 2.0, "implicit": 1.0, "nonoverlap": 1.0})
    more_calls[1]["denoiser_calls_per_sample"] = 11
    assert failures(made, more_calls) == {(identity(more_calls[1]), "denoiser_calls_per_sample")}


def test_identity_names_method_profile_and_tiling():
    assert identity({"method": "fstd", "profile": "oracle",
                     "tiling": {"strategy": "explicit", "overlap": 16}}) == "fstd/oracle/explicit-t64-o16"


def tiny_results(**changes):
    """Two tiny-profile runs (FSTD and no-overlap stage II) in the shape of a real results.json, scored."""
    base = json.loads((Path(__file__).parent / "fixtures" / "tiny_asd_results.json").read_text())
    base.update(scores={"fid": 300.0, "inception_score": 1.5, "clip_score": 20.0, "seam_score": 1.1,
                        "psnr_y": None, "ssim_y": None, "lpips": None, "fid_per_ratio": {}, "skipped": {}},
                dataset={"name": "synthetic", "folder": "x", "manifest_hash": "abc", "items": 21})
    runs = [dict(copy.deepcopy(base), method=method) for method in ("asd", "ar-tile")]
    for key, value in changes.items():
        target = runs[0]
        *parents, last = key.split(".")
        for part in parents:
            target = target[part]
        target[last] = value
    return runs


def test_model_runs_are_guarded_on_scores_counts_and_the_sample_plan():
    made = make_baseline(tiny_results(), "tiny", [{"verb": "run", "spec": RunSpec("asd", "tiny").as_record()}])
    assert made["runs"]["asd/tiny"]["scores.fid"] == 300.0
    assert made["runs"]["asd/tiny"]["dataset.manifest_hash"] == "abc"
    assert made["time_ratios"] == {}  # no ratio of two runs' seconds
    assert failures(made, tiny_results(**{"scores.fid": 300.0 * 1.005})) == set()
    assert failures(made, tiny_results(**{"scores.fid": 330.0})) == {("asd/tiny", "scores.fid")}
    assert failures(made, tiny_results(stage2_denoiser_calls_per_image=9.0)) == {
        ("asd/tiny", "stage2_denoiser_calls_per_image")}
    assert failures(made, tiny_results(samples_plan=[])) == {("asd/tiny", "samples_plan")}
    assert failures(made, tiny_results(**{"dataset.manifest_hash": "def"})) == {
        ("asd/tiny", "dataset.manifest_hash")}


def test_check_runs_every_step_of_the_baselines_suite(baseline, tmp_path):
    path = tmp_path / "baseline.json"
    write_json(path, baseline)
    checks = guard.check(path, tmp_path / "fresh")
    assert checks and all(check.ok for check in checks)
    assert {r["method"] for r in load_results(tmp_path / "fresh")} == {"fstd"}
    assert len(load_results(tmp_path / "fresh")) == 10  # the study's every tiling
    assert "within tolerance" in render(checks, path)


def test_a_missing_baseline_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="no baseline at .*python -m benchmark baseline"):
        guard.check(tmp_path / "none.json", tmp_path)


def test_suites_are_api_calls_as_data_and_baselines_of_command_lines_still_read():
    assert guard.suite("oracle") == [{"verb": "study", "args": {"profile": "oracle", **guard.ORACLE_STUDY}}]
    tiny = guard.suite("tiny")
    assert tiny[-1]["verb"] == "timing" and all(step["verb"] == "run" for step in tiny[:-1])
    assert {RunSpec.from_record(step["spec"]).method for step in tiny[:-1]} == {
        "sr-plus", "sr-tile", "sr-tile-plus", "ar-plus", "ar-tile", "asd", "md", "fstd", "hidiffusion",
        "scalecrafter", "demofusion", "fstd-t2i", "i-max"}
    one_each = [RunSpec.from_record(step["spec"]) for step in guard.suite("tiny", ["demofusion"])]
    # the method's own suite step on SD 2.1, the model's small one (over the method's) on SDXL
    assert [(spec.model, spec.limit, spec.size, spec.steps) for spec in one_each] == [
        ("sd21", 1, (1024, 1024), 2), ("sdxl", 1, (256, 1152), 2)]
    asd = [RunSpec.from_record(step["spec"]) for step in guard.suite("tiny", ["asd"])]
    assert [(spec.method, spec.model, spec.backbone) for spec in asd] == [
        ("asd", "sd21", None), ("asd", "sdxl", None), ("asd", "flux", None), ("asd", "sd21", "stablesr")]
    assert guard.legacy_step(["run", "--method", "asd", "--size", "256x512", "--limit", "2", "--no-progress"]) == {
        "verb": "run", "spec": RunSpec("asd", size=(256, 512), limit=2, progress=False).as_record()}
    assert guard.legacy_step(["study", "--steps", "30", "--no-progress"]) == {
        "verb": "study", "args": {"steps": 30, "progress": False}}
    for name in ("oracle", "tiny"):  # the committed baselines' suites read
        assert guard.steps_of(json.loads((Path(__file__).parent.parent / guard.COMMITTED_BASELINES / f"{name}.json").read_text()))
    with pytest.raises(ValueError, match="no regression suite for profile 'paper'"):
        guard.suite("paper")


def test_a_baseline_tracks_the_suites_runs_not_others_in_the_folder(tmp_path):
    for method in ("asd", "sd21-bicubic"):  # the second: e.g. the example plugin's run beside the suite's
        write_json(tmp_path / "tiny" / method / "tag" / "results.json", {"method": method, "profile": "tiny"})
    steps = guard.suite("tiny", ["asd"])
    assert [r["method"] for r in guard.suite_results(steps, tmp_path)] == ["asd"]
    assert len(load_results(tmp_path)) == 2
