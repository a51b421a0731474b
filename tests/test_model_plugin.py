"""A base model from outside the package is a plugin like a method: ``--include`` brings it in, ``sr-plus`` runs on it.

The module is docs/extending.md's own example (SD 2.1's tiny entry under another name and seed), written
into tmp_path, so the documented module is the one tested.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from baselines.base_models import base_models, get_base_model, unregister_base_model
from benchmark import api, plugins
from benchmark.cli import main
from benchmark.errors import PluginError, UsageError
from benchmark.spec import RunSpec

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
NAME = "my-sd21"


@pytest.fixture
def model_plugin(tmp_path, monkeypatch):
    """docs/extending.md's ``my_model.py``, written into tmp_path; its model unregistered afterwards."""
    source = re.search(r"```python\n# my_model\.py\n(.*?)```", DOC.read_text(), re.S).group(1)
    path = tmp_path / "my_model.py"
    path.write_text(source)
    monkeypatch.setattr(plugins, "_loaded", set())
    yield path
    unregister_base_model(NAME)


def _run_record(out: Path) -> tuple[dict, dict]:
    return json.loads((out / "results.json").read_text()), json.loads((out / "run.json").read_text())


def test_a_model_plugin_runs_sr_plus_through_the_api_and_the_command_line(model_plugin, tmp_path):
    spec = RunSpec("sr-plus", model=NAME, prompt="a lighthouse", size=(64, 96), limit=1, score=False,
                   runs=tmp_path / "api", include=(str(model_plugin),), progress=False)
    finished = api.run(spec)
    assert get_base_model(NAME).origin == str(model_plugin) and get_base_model(NAME).seed == 7
    results, run = _run_record(finished.out)
    assert results["model"] == run["model"] == NAME and NAME in finished.out.name and results["finished_samples"] == 1
    assert run["weights"]["stage1"]["model"] == f"tiny/{NAME}" and "seed 7" in run["weights"]["stage1"]["weights"]

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "--include", str(model_plugin), "--model", NAME, "--method", "sr-plus", "--limit", "1",
                     "--prompt", "a lighthouse", "--size", "64x96", "--no-score", "--runs", str(tmp_path / "cli")])
    assert code == 0, out.getvalue()
    (folder,) = [path.parent for path in (tmp_path / "cli").rglob("results.json")]
    assert _run_record(folder)[0]["model"] == NAME

    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        assert main(["list", "--include", str(model_plugin)]) == 0
    assert re.search(rf"  {NAME} +SD 2.1's layout, other random weights \[.*my_model\.py\]", listing.getvalue())
    assert re.search(r"  sr-plus .*\(models: sd21, flux, flux-schnell, sdxl, my-sd21\)", listing.getvalue())


def test_a_method_that_names_its_models_refuses_a_plugin_model_naming_them(model_plugin):
    plugins.include([str(model_plugin)])
    assert NAME in base_models()
    with pytest.raises(UsageError, match=rf"method ar-plus runs on the model sd21, not '{NAME}'"):
        RunSpec("ar-plus", model=NAME).resolved()
    assert RunSpec("sr-plus", model=NAME).resolved().model == NAME


def test_a_model_whose_name_clashes_is_refused_as_a_method_is(tmp_path, monkeypatch):
    clash = tmp_path / "clash_model.py"
    clash.write_text("from dataclasses import replace\n"
                     "from baselines.base_models import register_base_model\n"
                     "from baselines.base_models.sd21 import SD21\n"
                     "register_base_model(replace(SD21, seed=7, origin=None))\n")
    monkeypatch.setattr(plugins, "_loaded", set())
    with pytest.raises(PluginError, match=r"--include '.*clash_model\.py' imports, but what it registers is refused: "
                                          r"model 'sd21' from .*clash_model\.py clashes with the built-in model"):
        plugins.include([str(clash)])
    assert get_base_model("sd21").origin == "built-in" and get_base_model("sd21").seed == 0
