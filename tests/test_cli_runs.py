"""The command line, resumable runs and the oracle report."""

import json

import pytest
import torch

from baselines.tiling import TilingConfig
from benchmark.cli import main
from benchmark.oracle.job import OracleFSTDJob
from benchmark.runs.runner import RunMismatchError, run

SMALL = ["--size", "512x512", "--steps", "6", "--no-progress"]


def test_run_writes_results_and_per_sample_records(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--method", "fstd", "--profile", "oracle", "--tiling", "explicit",
                 "--overlap", "16", "--limit", "2", "--seed", "3", "--out", str(out)] + SMALL) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "fstd" and results["profile"] == "oracle"
    assert results["tiling"] == {"strategy": "explicit", "tile": 64, "overlap": 16,
                                 "weighting": "gaussian", "tile_batch_size": 1}
    assert results["samples"] == 2 and results["seed"] == 3
    assert results["denoiser_calls_per_sample"] == 6 * 1  # a 64² latent is one tile
    for key in ("seconds_per_sample", "peak_memory_mib", "seam_score", "distribution_error"):
        assert results[key] > 0
    assert results["environment"]["git"]["commit"]
    assert torch.__version__.startswith(results["environment"]["packages"]["torch"])
    records = sorted((out / "samples").glob("*.json"))
    assert [r.name for r in records] == ["00000.json", "00001.json"]
    assert (out / "samples" / "00000.latent.npy").exists()


def test_rerunning_resumes_without_recomputing_finished_samples(tmp_path):
    out = tmp_path / "run"
    job = OracleFSTDJob(TilingConfig("implicit"), size=(512, 512), steps=6)
    run(job, 2, out, progress=False)
    first = (out / "samples" / "00000.json").read_bytes()
    results = run(job, 3, out, progress=False)
    assert results["resumed_samples"] == 2 and results["samples"] == 3
    assert (out / "samples" / "00000.json").read_bytes() == first


class FailingJob(OracleFSTDJob):
    def run_sample(self, index):
        if index == 1:
            raise KeyboardInterrupt
        return super().run_sample(index)


def test_an_interrupted_run_keeps_finished_samples_and_completes_identically(tmp_path):
    tiling = TilingConfig("implicit")
    with pytest.raises(KeyboardInterrupt):
        run(FailingJob(tiling, size=(512, 512), steps=6), 3, tmp_path / "a", progress=False)
    assert sorted(p.name for p in (tmp_path / "a" / "samples").iterdir()) == [
        "00000.json", "00000.latent.npy"]
    resumed = run(OracleFSTDJob(tiling, size=(512, 512), steps=6), 3, tmp_path / "a",
                  progress=False)
    straight = run(OracleFSTDJob(tiling, size=(512, 512), steps=6), 3, tmp_path / "b",
                   progress=False)
    assert resumed["resumed_samples"] == 1
    assert resumed["seam_score"] == straight["seam_score"]
    assert resumed["distribution_error"] == straight["distribution_error"]


def test_a_run_directory_refuses_other_parameters(tmp_path):
    run(OracleFSTDJob(TilingConfig("none"), size=(512, 512), steps=4), 1, tmp_path, progress=False)
    with pytest.raises(RunMismatchError, match="other parameters"):
        run(OracleFSTDJob(TilingConfig("none"), size=(512, 512), steps=5), 1, tmp_path,
            progress=False)


@pytest.mark.parametrize("arguments, message", [
    (["--method", "asdf"], "unknown method 'asdf'; known methods: fstd"),
    (["--profile", "huge"], "unknown profile 'huge'"),
    (["--tiling", "diagonal"], "unknown tiling strategy"),
    (["--tile", "0"], "tile size must be positive"),
    (["--tiling", "explicit", "--overlap", "-4"], "overlap must not be negative"),
    (["--tiling", "explicit", "--overlap", "64"], "must be smaller than the tile"),
    (["--offset-range", "-1"], "offset range must not be negative"),
    (["--size", "512"], "not of the form HxW"),
    (["--size", "4x512"], "too small"),
    (["--size", "516x512"], "multiple of 8"),
    (["--limit", "0"], "--limit must be at least 1"),
])
def test_bad_input_gets_one_clear_line_and_exit_status_2(tmp_path, capsys, arguments, message):
    assert main(["run", "--out", str(tmp_path)] + SMALL + arguments) == 2
    assert message in capsys.readouterr().err


def test_report_renders_the_paper_tables_with_provenance_and_not_run_rows(tmp_path, capsys):
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    for tiling in (["--tiling", "nonoverlap"], ["--tiling", "implicit"]):
        assert main(["run", "--limit", "1", "--out", str(runs / tiling[1])] + SMALL + tiling) == 0
    assert main(["report", "--runs", str(runs), "--out", str(reports)]) == 0
    text = (reports / "oracle.md").read_text()
    for heading in ("Table 4", "Table 6", "Table 7"):
        assert heading in text
    assert "device: CPU" in text and "commit: " in text and "weights: none" in text
    assert "| no overlap " in text and "| 1.00 " in text  # non-overlap is its own time unit
    assert "not run" in text  # explicit rows were not run
    assert "75.08" in text and "166.8" in text  # the paper's figures stand beside ours
    plots = list((reports / "figures").glob("oracle-time-*.png"))
    assert len(plots) == 1 and f"figures/{plots[0].name}" in text


def test_report_without_runs_says_what_to_do(tmp_path, capsys):
    assert main(["report", "--runs", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err


def test_study_runs_every_row_of_tables_4_6_7(tmp_path):
    assert main(["study", "--size", "512x512", "--steps", "3", "--limit", "1", "--no-progress",
                 "--runs", str(tmp_path / "runs"), "--reports", str(tmp_path / "reports")]) == 0
    text = (tmp_path / "reports" / "oracle.md").read_text()
    assert "not run" not in text
    assert len(list((tmp_path / "runs").rglob("results.json"))) == 10


def test_list_shows_methods_and_profiles(capsys):
    assert main(["list"]) == 0
    output = capsys.readouterr().out
    assert "fstd" in output and "oracle" in output


def test_reports_go_under_the_runs_folder_unless_a_folder_is_named(tmp_path, monkeypatch):
    """A user's report never rewrites the committed reference reports (``reports/`` of the checkout)."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--limit", "1", "--tiling", "nonoverlap"] + SMALL) == 0
    assert main(["report"]) == 0
    assert (tmp_path / "runs" / "reports" / "oracle.md").exists()
    assert not (tmp_path / "reports").exists()
    assert main(["report", "--out", "reports"]) == 0
    assert (tmp_path / "reports" / "oracle.md").exists()


@pytest.mark.parametrize("progress, shown", [(None, False), (True, True), (False, False)])
def test_progress_bars_show_only_on_a_terminal_unless_asked(tmp_path, capsys, progress, shown):
    """Under pytest stderr is not a terminal, as in a CI log: the default shows no bar."""
    run(OracleFSTDJob(TilingConfig("none"), size=(512, 512), steps=2), 1, tmp_path, progress=progress)
    assert ("fstd (oracle)" in capsys.readouterr().err) == shown
