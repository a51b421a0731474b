"""A method and a metric from outside the package get everything a built-in one gets.

Each test writes a plugin module into tmp_path (a method that paints seeded noise, so a run
takes seconds, and a metric over its images) and brings it in through ``--include`` or an
entry point of an installed distribution (a ``.dist-info`` folder on the path), without
touching the package: ``list`` shows both, a run is measured and scored with the metric,
``report`` has the method's row and the metric's column, ``baseline``/``compare`` track
them and fail when the metric moves, and bad plugins get errors that name them.
"""

from __future__ import annotations

import contextlib
import io
import json
import textwrap

import pytest

from baselines.registry import get_method, methods, unregister_method
from benchmark import api, guard, plugins
from benchmark.cli import main
from benchmark.errors import PluginError
from benchmark.reporting.all_methods import OWN_INPUTS_TITLE
from benchmark.runs.runner import PARTIAL_EXIT
from benchmark.metrics.registry import metric_names, unregister_metric
from benchmark.spec import RunSpec

PLUGIN = '''
import os

import torch

from baselines.registry import Method, register_method
from benchmark.metrics.registry import MetricValue, register_metric


class Noise:
    """Seeded noise of exactly the size asked for; WRONG_WIDE makes wide samples one pixel short, RAISE_TALL
    makes tall ones raise."""

    def __init__(self, context):
        self.context = context

    def __call__(self, prompt, size, seeds, source=None):
        height, width = size
        if os.environ.get("{prefix}_WRONG_WIDE") and width > height:
            width -= 1
        if os.environ.get("{prefix}_RAISE_TALL") and height > width:
            raise RuntimeError("tall samples break this plugin")
        image = torch.rand((1, 3, height, width), generator=seeds.generator("noise")) * 2 - 1
        return image, {{"painted": "uniform noise"}}

    def describe(self):
        return {{"method": "{method}", "profile": self.context.profile, "weights": {{}}, "steps": None}}


register_method(Method("{method}", "seeded noise: a plugin's method, 100% noise", lambda method, context: Noise(context)))


@register_metric(applies_to=("text-to-image",), column="{metric}↑", tolerance={{"rel": 0.01}})
def {metric}(context):
    scale = float(os.environ.get("{prefix}_SCALE", "1"))
    return MetricValue(scale * len(context.images), {{"library": "test plugin"}})
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch, request):
    """A plugin module with a unique method and metric name; unregistered afterwards."""
    tag = request.node.name.replace("test_", "").replace("_", "")[:24]
    names = {"method": f"noise-{tag}", "metric": f"count_{tag}", "prefix": f"PLUGIN_{tag.upper()}"}
    path = tmp_path / f"plugin_{tag}.py"
    path.write_text(textwrap.dedent(PLUGIN.format(**names)))
    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setattr(plugins, "_included_by", {})
    yield {**names, "path": path}
    unregister_method(names["method"])
    if names["metric"] in metric_names():
        unregister_metric(names["metric"])


def _spec(plugin, tmp_path, **fields) -> RunSpec:
    values = dict(profile="tiny", dataset="synthetic", limit=2, runs=tmp_path / "runs", progress=False,
                  include=(str(plugin["path"]),))
    return RunSpec(plugin["method"], **{**values, **fields})


def test_an_included_plugin_is_listed_run_scored_and_reported(plugin, tmp_path):
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        assert main(["list", "--include", str(plugin["path"])]) == 0
    assert plugin["method"] in listing.getvalue() and plugin["metric"] in listing.getvalue()
    assert get_method(plugin["method"]).origin == str(plugin["path"].resolve())  # named by its file

    finished = api.run(_spec(plugin, tmp_path))
    results = finished.results
    assert results["finished_samples"] == 2 and results["seconds_per_image"] > 0
    assert results["peak_memory_mib"] > 0 and results["task"] == "text-to-image"
    assert results["method_origin"] == get_method(plugin["method"]).origin
    assert results["scores"][plugin["metric"]] == 2.0
    assert results["scores"]["fid"] is not None  # the built-in metrics too
    assert all((finished.out / row["image"]).is_file() for row in results["per_image"])

    written = api.report(tmp_path / "runs", tmp_path / "reports")
    text = (tmp_path / "reports" / "tiny.md").read_text()
    assert tmp_path / "reports" / "tiny.md" in written
    row = next(line for line in text.splitlines() if line.startswith(f"| {plugin['method']} "))
    assert "2.00" in row and f"{plugin['metric']}↑" in text  # the metric's column, filled


def test_a_resumed_plugin_run_recomputes_nothing(plugin, tmp_path):
    first = api.run(_spec(plugin, tmp_path, score=False))
    image = first.out / first.results["per_image"][0]["image"]
    made = image.stat().st_mtime_ns
    again = api.run(_spec(plugin, tmp_path, score=False))
    assert again.out == first.out and again.results["resumed_samples"] == 2
    assert image.stat().st_mtime_ns == made


def test_an_entry_point_registers_without_include(plugin, tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "plugin_dist-0.1.dist-info").mkdir(parents=True)
    (site / plugin["path"].name).write_text(plugin["path"].read_text())
    module = plugin["path"].stem
    (site / "plugin_dist-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-dist\n"
                                                                 "Version: 0.1\n")
    (site / "plugin_dist-0.1.dist-info" / "entry_points.txt").write_text(
        f"[asd_bench.methods]\n{plugin['method']} = {module}\n\n[asd_bench.metrics]\n{plugin['metric']} = {module}\n")
    monkeypatch.syspath_prepend(str(site))
    assert plugin["method"] not in methods()
    finished = api.run(_spec(plugin, tmp_path, include=()))
    assert plugin["method"] in methods() and get_method(plugin["method"]).origin == module
    assert finished.results["scores"][plugin["metric"]] == 2.0


def test_the_guard_tracks_a_plugin_and_fails_when_its_metric_moves(plugin, tmp_path, monkeypatch):
    baseline = guard.baseline("tiny", tmp_path / "suite", tmp_path / "baseline.json", methods=[plugin["method"]],
                              include=[str(plugin["path"])])
    stored = json.loads(baseline.read_text())
    (step,) = stored["suite"]  # the suite, as specifications, names the plugin to include again
    assert step["verb"] == "run" and step["spec"]["method"] == plugin["method"]
    assert step["spec"]["include"] == [str(plugin["path"])]
    key = f"{plugin['method']}/tiny"
    assert stored["runs"][key][f"scores.{plugin['metric']}"] == 2.0
    other = tmp_path / "suite" / "tiny" / "asd" / "earlier"  # another method's run in the same folder
    other.mkdir(parents=True)
    (other / "results.json").write_text(json.dumps({"method": "asd", "profile": "tiny", "environment": {}}))
    again = guard.baseline("tiny", tmp_path / "suite", tmp_path / "again.json", methods=[plugin["method"]],
                           include=[str(plugin["path"])])
    assert list(json.loads(again.read_text())["runs"]) == [key]  # --methods: those methods' runs only
    (other / "results.json").unlink()
    assert all(check.ok for check in guard.check(baseline, tmp_path / "suite", run=False))

    monkeypatch.setenv(f"{plugin['prefix']}_SCALE", "1.5")
    api.score([tmp_path / "suite" / "tiny" / plugin["method"] / path.name
               for path in (tmp_path / "suite" / "tiny" / plugin["method"]).iterdir()])
    failed = [check for check in guard.check(baseline, tmp_path / "suite", run=False) if not check.ok]
    assert [(check.run, check.figure) for check in failed] == [(key, f"scores.{plugin['metric']}")]


def test_a_sample_of_the_wrong_size_is_recorded_as_failed_and_the_run_goes_on(plugin, tmp_path, monkeypatch):
    monkeypatch.setenv(f"{plugin['prefix']}_WRONG_WIDE", "1")
    results = api.run(_spec(plugin, tmp_path, limit=3, score=False)).results
    rows = results["per_image"]
    wide = [row for row in rows if row["size"][1] > row["size"][0]]
    assert wide and all(row["status"] == "failed" and "returned an image of shape" in row["error"] for row in wide)
    assert results["failed_samples"] == len(wide) and results["finished_samples"] == 3 - len(wide) > 0


def test_a_method_that_raises_fails_that_sample_the_run_goes_on_and_a_rerun_retries_it(plugin, tmp_path, monkeypatch,
                                                                                        capsys):
    monkeypatch.setenv(f"{plugin['prefix']}_RAISE_TALL", "1")
    argv = ["run", "--include", str(plugin["path"]), "--method", plugin["method"], "--dataset", "synthetic",
            "--limit", "3", "--runs", str(tmp_path / "runs"), "--no-progress"]
    assert main(argv) == PARTIAL_EXIT  # finished, with failed samples
    printed = capsys.readouterr()
    assert "1 of 3 samples failed: RuntimeError: tall samples break this plugin" in printed.out
    assert f"of {plugin['method']} failed: RuntimeError: tall samples break this plugin" in printed.err
    (out,) = (tmp_path / "runs" / "tiny" / plugin["method"]).iterdir()
    results = json.loads((out / "results.json").read_text())
    assert (results["finished_samples"], results["failed_samples"], results["oom_samples"]) == (2, 1, 0)
    assert len(list((out / "samples").glob("*.png"))) == 2
    (failed,) = [row for row in results["per_image"] if row["status"] == "failed"]
    record = json.loads((out / "samples" / f"{failed['index']:05d}.json").read_text())
    assert record["error"] == "RuntimeError: tall samples break this plugin" and record["error_type"] == "RuntimeError"
    assert record["failed_method"] == plugin["method"] and any(plugin["path"].name in line for line in record["traceback"])
    assert results["scores"]["failed_samples_skipped"] == 1 and results["scores"]["oom_samples_skipped"] == 0

    api.report(tmp_path / "runs", tmp_path / "reports")
    text = (tmp_path / "reports" / "tiny.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| {plugin['method']} "))
    assert "OOM" not in row and "| 2 " in row  # two images, scored; the failed one is no OOM
    assert (f"{plugin['method']}: 1 of 3 samples failed (the method raised, not out of memory): RuntimeError: tall "
            "samples break this plugin") in text and "samples OOM" not in text

    made = {png: png.stat().st_mtime_ns for png in (out / "samples").glob("*.png")}
    monkeypatch.delenv(f"{plugin['prefix']}_RAISE_TALL")
    assert main(argv) == 0  # the fault fixed, the rerun retries the failed sample alone
    results = json.loads((out / "results.json").read_text())
    assert (results["finished_samples"], results["failed_samples"], results["retried_samples"]) == (3, 0, 1)
    assert all(png.stat().st_mtime_ns == when for png, when in made.items())


def test_a_run_whose_every_sample_failed_shows_failed_not_oom_in_its_own_table(plugin, tmp_path, monkeypatch):
    monkeypatch.setenv(f"{plugin['prefix']}_RAISE_TALL", "1")
    results = api.run(_spec(plugin, tmp_path, size=(512, 256), prompt="a tall lighthouse", limit=1)).results
    assert results["failed_samples"] == 1 and results["finished_samples"] == 0 and "1 failed" in results["note"]
    api.report(tmp_path / "runs", tmp_path / "reports")
    text = (tmp_path / "reports" / "tiny.md").read_text()
    table = text[text.index(f"### {OWN_INPUTS_TITLE}"):]
    row = next(line for line in table.splitlines() if line.startswith(f"| {plugin['method']} "))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert "512×256" in cells and "a tall lighthouse" in cells and "failed" in cells and "OOM" not in cells


def test_help_of_every_verb_lists_an_included_plugins_methods(plugin, capsys):
    from benchmark.cli import VERBS

    for verb in VERBS:
        with pytest.raises(SystemExit) as stopped:
            main([verb.NAME, "--include", str(plugin["path"]), "--help"])
        assert stopped.value.code == 0, verb.NAME
        assert "usage:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", "--include", str(plugin["path"]), "--help"])
    assert "seeded noise: a plugin's method, 100% noise" in " ".join(capsys.readouterr().out.split())


def test_a_plugin_that_does_not_import_is_named_with_its_error(tmp_path, monkeypatch):
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("import a_module_that_is_not_there\n")
    monkeypatch.setattr(plugins, "_loaded", set())
    with pytest.raises(PluginError, match=r"broken_plugin\.py.*does not import.*a_module_that_is_not_there"):
        api.run(RunSpec("asd", include=(str(broken),)))
    with pytest.raises(PluginError, match=r"'no_such_plugin_module' does not import: ModuleNotFoundError"):
        plugins.include(["no_such_plugin_module"])
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        assert main(["list", "--include", str(broken)]) == 2
    assert "broken_plugin.py" in errors.getvalue()


def test_a_method_whose_name_clashes_with_a_built_in_is_refused_by_name(tmp_path, monkeypatch):
    clash = tmp_path / "clash_plugin.py"
    clash.write_text("from baselines.registry import Method, register_method\n"
                     "register_method(Method('asd', 'mine', lambda method, context: None))\n")
    monkeypatch.setattr(plugins, "_loaded", set())
    with pytest.raises(PluginError, match=r"clash_plugin\.py' imports, but what it registers is refused: method 'asd' "
                                          r"from .*clash_plugin\.py clashes with the built-in"):
        plugins.include([str(clash)])
    assert get_method("asd").built_in


def test_a_plugin_method_has_a_ceiling_searched_in_fresh_processes(plugin, tmp_path):
    """Each trial is a fresh `run` process: it must get the plugin through the --include the search passes on."""
    finished = api.ceiling(plugin["method"], "tiny", "4GiB", 512, 512, runs=tmp_path / "runs",
                           include=[str(plugin["path"])], log=lambda line: None)
    record = finished.results
    assert (finished.out / "ceiling.json").is_file()
    assert [trial["side"] for trial in record["trials"]] == [512]  # one fresh process: the search is test_ceiling's
    assert all(trial["status"] == "ok" for trial in record["trials"]), record["trials"]
    assert record["ceiling"] == 512 and record["ceiling_is_lower_bound"]
