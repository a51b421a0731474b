"""pyiqa's MUSIQ, MANIQA and CLIP-IQA: opt-in, loaded from stand-in files in their published layouts (found through
``$ASD_IQA``), each equal to pyiqa's own metric given the same file, the size rule applied, a misfit named, and
``weights`` listing them. The tests that need pyiqa skip where it is not installed (CI installs it:
scripts/install-iqa.sh)."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import fixture_image

from benchmark import api
from benchmark.cli import score as score_verb
from benchmark.metrics import registry
from benchmark.metrics.iqa import CLIP_RN50, MAX_SIDE, MODELS, VARIABLE, load_iqa
from benchmark.metrics.registry import NotApplicable
from benchmark.metrics.weights import seeded, weight_files
from benchmark.spec import RunSpec

needs_pyiqa = pytest.mark.skipif(not __import__("importlib").util.find_spec("pyiqa"),
                                 reason="pyiqa is not installed (bash scripts/install-iqa.sh)")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv(VARIABLE, str(tmp_path))
    return tmp_path


def _pixels(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255)


def test_opt_in_metrics_are_scored_only_when_named():
    chosen = {metric.name for metric in registry.chosen_metrics()}
    assert not chosen & set(MODELS) and {"fid", "clip_score", "hpsv2"} <= chosen
    assert {metric.name for metric in registry.chosen_metrics(["maniqa"])} - chosen == {"maniqa"}
    assert registry.resolve_opt_in("all") == tuple(MODELS)
    assert registry.resolve_opt_in("clipiqa, musiq") == ("clipiqa", "musiq")
    with pytest.raises(ValueError, match=r"not an opt-in metric: fid, nope .*opt-in metrics: musiq, maniqa, clipiqa"):
        registry.resolve_opt_in("fid,nope")


@needs_pyiqa
def test_musiq_from_a_stand_in_file_equals_pyiqas_own_and_resizes_large_images(folder):
    from pyiqa import create_metric
    from pyiqa.archs.musiq_arch import MUSIQ

    with seeded(1):
        state = MUSIQ(pretrained=False).state_dict()
    file = folder / MODELS["musiq"].file
    torch.save(state, file)
    ours = load_iqa("musiq", "paper")
    assert ours.conventions["pretrained"] == str(file) and ours.conventions["library"].startswith("pyiqa ")
    theirs = create_metric("musiq", device="cpu", pretrained_model_path=str(file))
    small, large = fixture_image(0, 160, 224), fixture_image(1, 300, 1100)
    resized = Image.fromarray(large).resize((MAX_SIDE, round(300 * MAX_SIDE / 1100)), Image.BICUBIC)
    with torch.no_grad():
        assert ours.score(small) == pytest.approx(float(theirs(_pixels(small))), abs=1e-5)
        value = ours.score(large)
        assert value == pytest.approx(float(theirs(_pixels(resized))), abs=1e-5)
        assert value != pytest.approx(float(theirs(_pixels(large))), abs=1e-4)


@needs_pyiqa
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")  # pyiqa's own load, below
def test_clipiqa_reads_a_torchscript_rn50_as_openai_publishes_it_and_equals_pyiqas_own(folder):
    from pyiqa import create_metric
    from pyiqa.archs.clip_model import CLIP

    with seeded(2):
        model = CLIP(**CLIP_RN50).eval()
    file = folder / MODELS["clipiqa"].file
    with warnings.catch_warnings():  # torch.jit's deprecation and tracer warnings: OpenAI's file is TorchScript
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(model, {"encode_text": torch.zeros(1, 77, dtype=torch.long)})
    traced.half().save(str(file))  # every key, as float16, as RN50.pt holds them
    ours = load_iqa("clipiqa", "paper")
    theirs = create_metric("clipiqa", device="cpu", backbone=str(file))  # pyiqa's own load of the same file
    image = fixture_image(2, 96, 160)
    with torch.no_grad():
        value = ours.score(image)
        assert value == pytest.approx(float(theirs(_pixels(image))), abs=1e-6)
        assert 0 < value < 1 and value != pytest.approx(load_iqa("clipiqa", "tiny").score(image), abs=1e-4)


@needs_pyiqa
def test_maniqa_loads_pyiqas_params_layout_and_names_the_keys_that_do_not_fit(folder):
    made = load_iqa("maniqa", "tiny", seed=3, crops=1)
    state = made.metric.net.state_dict()
    file = folder / MODELS["maniqa"].file
    torch.save({"params": {key: value for key, value in state.items() if key != "fc_score.0.bias"}}, file)
    with pytest.raises(NotApplicable, match=r"does not fit MANIQA \(KonIQ-10k\): missing fc_score\.0\.bias; "
                                            r"unexpected none; wrong shape none"):
        load_iqa("maniqa", "paper", crops=1)
    torch.save({"params": {f"module.{key}": value for key, value in state.items()}}, file)
    loaded, image = load_iqa("maniqa", "paper", crops=1), fixture_image(3, 224, 224)
    assert loaded.conventions["pretrained"] == str(file) and loaded.conventions["crops_per_image"] == 1
    assert loaded.score(image) == pytest.approx(made.score(image), abs=1e-6)


@needs_pyiqa
def test_a_missing_file_skips_with_where_it_was_looked_for(folder):
    with pytest.raises(NotApplicable, match=rf"MUSIQ \(KonIQ-10k\) weights not found \(looked in {folder}/"
                                            r"musiq_koniq_ckpt-e95806b9\.pth, .*pyiqa/musiq_koniq"):
        load_iqa("musiq", "paper")


def test_score_takes_metrics_all_or_names_and_refuses_one_that_is_not_opt_in(capsys):
    parser = argparse.ArgumentParser()
    score_verb.add_arguments(parser)
    assert parser.parse_args(["run"]).metrics == ""
    assert parser.parse_args(["run", "--metrics", "all"]).metrics == "musiq,maniqa,clipiqa"
    assert parser.parse_args(["run", "--metrics", "clipiqa"]).metrics == "clipiqa"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--metrics", "fid"])
    assert "not an opt-in metric: fid" in capsys.readouterr().err


def test_weights_lists_each_file_with_where_it_is_looked_for(folder):
    (folder / MODELS["maniqa"].file).write_bytes(b"stand-in")
    rows = {row.key: row for row in weight_files("paper", hash_files=False)}
    assert {"musiq", "maniqa", "clipiqa"} <= set(rows)
    assert rows["maniqa"].present and rows["maniqa"].path == str(folder / "ckpt_koniq10k.pt")
    assert not rows["musiq"].present and not rows["musiq"].needed
    assert rows["clipiqa"].looked_in[:2] == (str(folder / "RN50.pt"), str(Path(torch.hub.get_dir()) / "clip/RN50.pt"))


@needs_pyiqa
def test_a_tiny_run_scored_with_metrics_musiq_gets_it_with_an_interval_and_not_without(tmp_path):
    out = tmp_path / "run"
    api.run(RunSpec("sr-plus", prompt="a lighthouse", size=(64, 96), limit=3, out=out, steps=1, progress=False,
                    score=False))
    (plain,) = api.score([out], bootstrap=20)
    assert "musiq" not in plain.results["scores"] and "musiq" not in plain.results["per_image"][0]
    (scored,) = api.score([out], bootstrap=20, metrics="musiq")
    scores = json.loads((out / "results.json").read_text())["scores"]
    assert scores["musiq"] == pytest.approx(np.mean([row["musiq"] for row in scored.results["per_image"]]))
    assert scores["intervals"]["musiq"]["low"] <= scores["musiq"] <= scores["intervals"]["musiq"]["high"]
    assert scored.results["metric_conventions"]["musiq"]["random_weights"] is True
    assert "maniqa" not in scores and "clipiqa" not in scores
    (markdown, *_) = api.report(tmp_path, html=False)
    headers = [line for line in markdown.read_text().splitlines() if line.startswith("| method")]
    assert any("MUSIQ↑" in line for line in headers)  # a column only where a run in the table was scored with it
    assert not any("MANIQA↑" in line for line in headers)
