"""Resumable runs and the oracle report through the Python API; the command line's own subject
(bad input of every verb gives one "error: ..." line and exit status 2, ``list``) at the end."""

import json

import pytest
import torch

from baselines.tiling import TilingConfig
from benchmark import api
from benchmark.cli import main
from benchmark.errors import UsageError
from benchmark.oracle.job import OracleFSTDJob
from benchmark.runs.runner import RunMismatchError, run
from benchmark.spec import RunSpec

SMALL = dict(size=(512, 512), steps=6, progress=False)


def test_run_writes_results_and_per_sample_records(tmp_path):
    out = tmp_path / "run"
    finished = api.run(RunSpec("fstd", "oracle", tiling="explicit", overlap=16, limit=2, seed=3, out=out, **SMALL))
    results = json.loads((out / "results.json").read_text())
    assert finished.out == out and finished.results == results
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


@pytest.mark.parametrize("fields, message", [
    (dict(method="asdf"), "unknown method 'asdf'; known methods: .*fstd"),
    (dict(profile="huge"), "unknown profile 'huge'"),
    (dict(tiling="diagonal"), "unknown tiling strategy"),
    (dict(tile=0), "tile size must be positive"),
    (dict(tiling="explicit", overlap=-4), "overlap must not be negative"),
    (dict(tiling="explicit", overlap=64), "must be smaller than the tile"),
    (dict(offset_range=-1), "offset range must not be negative"),
    (dict(size=(4, 512)), "too small"),
    (dict(size=(516, 512)), "multiple of 8"),
    (dict(limit=0), "--limit must be at least 1"),
])
def test_bad_input_is_refused_with_a_clear_message_before_anything_runs(tmp_path, fields, message):
    spec = RunSpec(**{"method": "fstd", "out": tmp_path / "run", **SMALL, **fields})
    with pytest.raises(ValueError, match=message):
        api.run(spec)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, message", [("512", "not of the form HxW"), ("4x512", "too small"),
                                           ("512 by 512", "not of the form HxW")])
def test_bad_sizes_are_refused_by_parse_size(text, message):
    from benchmark.spec import parse_size

    with pytest.raises(UsageError, match=message):
        parse_size(text)
    assert parse_size(" 512x768 ") == (512, 768) and parse_size("64×32") == (64, 32)


def test_report_renders_the_paper_tables_with_provenance_and_not_run_rows(tmp_path):
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    for tiling in ("nonoverlap", "implicit"):
        api.run(RunSpec("fstd", tiling=tiling, limit=1, out=runs / tiling, **SMALL))
    assert api.report(runs, reports) == [reports / "oracle.md", reports / "site" / "index.html"]
    text = (reports / "oracle.md").read_text()
    for heading in ("Table 4", "Table 6", "Table 7"):
        assert heading in text
    assert "device: CPU" in text and "commit: " in text and "weights: none" in text
    assert "| no overlap " in text and "| 1.00 " in text  # non-overlap is its own time unit
    assert "not run" in text  # explicit rows were not run
    assert "75.08" in text and "166.8" in text  # the paper's figures stand beside ours
    plots = list((reports / "figures").glob("oracle-time-*.png"))
    assert len(plots) == 1 and f"figures/{plots[0].name}" in text


def test_report_without_runs_writes_nothing(tmp_path):
    assert api.report(tmp_path, tmp_path / "reports") == []
    assert not (tmp_path / "reports").exists()


def test_study_runs_every_row_of_tables_4_6_7(tmp_path):
    finished, written = api.study(size=(512, 512), steps=3, limit=1, progress=False, runs=tmp_path / "runs",
                                  reports=tmp_path / "reports")
    assert written == [tmp_path / "reports" / "oracle.md"]
    text = (tmp_path / "reports" / "oracle.md").read_text()
    assert "not run" not in text
    assert len(list((tmp_path / "runs").rglob("results.json"))) == 10 == len(finished)
    assert all((run.out / "results.json").exists() and run.results["samples"] == 1 for run in finished)


def test_reports_go_under_the_runs_folder_unless_a_folder_is_named(tmp_path, monkeypatch):
    """A user's report never rewrites the committed reference reports (``reports/`` of the checkout)."""
    monkeypatch.chdir(tmp_path)
    api.run(RunSpec("fstd", limit=1, tiling="nonoverlap", **SMALL))
    assert (tmp_path / "runs" / "oracle" / "fstd").is_dir()  # the default runs folder is relative
    api.report()
    assert (tmp_path / "runs" / "reports" / "oracle.md").exists()
    assert not (tmp_path / "reports").exists()
    api.report(out="reports")
    assert (tmp_path / "reports" / "oracle.md").exists()


@pytest.mark.parametrize("progress, shown", [(None, False), (True, True), (False, False)])
def test_progress_bars_show_only_on_a_terminal_unless_asked(tmp_path, capsys, progress, shown):
    """Under pytest stderr is not a terminal, as in a CI log: the default shows no bar."""
    run(OracleFSTDJob(TilingConfig("none"), size=(512, 512), steps=2), 1, tmp_path, progress=progress)
    assert ("fstd (oracle)" in capsys.readouterr().err) == shown


# ---------------------------------------------------------------- the command line itself


def cli(argv) -> int:
    """``main(argv)``'s exit status, also where argparse exits (a bad option value)."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def test_the_run_verb_prints_its_figures_and_writes_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["run", "--limit", "1", "--size", "512x512", "--steps", "2", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fstd on oracle, tiling implicit:" in printed and str(out / "results.json") in printed
    assert json.loads((out / "results.json").read_text())["samples"] == 1


@pytest.mark.parametrize("arguments, message", [
    (["run", "--method", "asdf"], "unknown method 'asdf'; known methods: "),
    (["run", "--size", "512"], "not of the form HxW"),
    (["run", "--method", "asd", "--tiling", "explicit"], "asd fixes its own (implicit)"),
    (["run", "--memory-budget", "lots"], "memory budget 'lots' is not a size with a unit"),
    (["score", "RUNS"], "no finished run"),
    (["tables", "--profile", "oracle"], "tables are made on a model profile"),
    (["study", "--profile", "tiny"], "the tiling study runs on the oracle profile only"),
    (["ceiling", "--method", "asd", "--budget", "lots"], "memory budget 'lots' is not a size with a unit"),
    (["report"], "no finished runs under"),
    (["weights", "--profile", "huge"], "unknown profile 'huge'"),
    (["baseline", "--profile", "paper"], "no regression suite for profile 'paper'"),
    (["compare", "--baseline", "RUNS/none.json"], "no baseline at"),
    (["vae-study", "--profile", "oracle"], "unknown profile 'oracle'"),
    (["timing", "--repeats", "0"], "--repeats must be at least 1"),
    (["list", "--include", "no_such_module_for_asd_bench"], "no_such_module_for_asd_bench"),
])
def test_bad_input_of_every_verb_gets_one_clear_line_and_exit_status_2(tmp_path, capsys, arguments, message):
    runs = tmp_path / "runs"
    runs.mkdir()
    arguments = [a.replace("RUNS", str(runs)) for a in arguments]
    where = {"run", "tables", "study", "ceiling", "report", "baseline", "compare", "vae-study", "timing"}
    assert cli(arguments + (["--runs", str(runs)] if arguments[0] in where else [])) == 2
    error = capsys.readouterr().err
    assert message in error
    if "usage:" not in error:  # argparse's own refusals print the usage line first
        assert error.startswith("error: ") and error.count("\n") == 1
    assert not list(runs.iterdir())  # refused before anything ran


def test_list_shows_every_verb_method_metric_and_profile(capsys):
    assert main(["list"]) == 0
    output = capsys.readouterr().out
    for name in ("run", "score", "tables", "study", "ceiling", "report", "weights", "baseline", "compare",
                 "vae-study", "timing", "list",
                 "fstd", "sr-plus", "sr-tile", "sr-tile-plus", "ar-plus", "ar-tile", "asd", "md",
                 "fid", "oracle", "tiny", "paper-arch", "paper"):
        assert f"  {name} " in output, name
    for heading in ("commands:", "methods:", "metrics:", "profiles:"):
        assert heading in output


def test_help_names_every_verb(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    text = capsys.readouterr().out
    assert all(verb in text for verb in ("run", "score", "tables", "study", "ceiling", "report", "weights",
                                         "baseline", "compare", "vae-study", "timing", "list"))
