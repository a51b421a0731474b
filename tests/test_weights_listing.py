"""`python -m benchmark weights`: every weight file a profile needs, where, its hash, whether present."""

import hashlib

import pytest

from baselines.paper_weights import WeightPaths
from benchmark.metrics.weights_listing import listing, model_rows

SD21_LAYOUT = {"unet": "config.json", "vae": "config.json", "text_encoder": "config.json",
               "scheduler": "scheduler_config.json"}


def fake_diffusers_folder(folder, layout, weights=True):
    """Configs where diffusers looks for them and a few bytes standing in for each model's weights."""
    for subfolder, config in layout.items():
        (folder / subfolder).mkdir(parents=True)
        (folder / subfolder / config).write_text("{}")
        if weights and config == "config.json":
            (folder / subfolder / "model.safetensors").write_bytes(subfolder.encode() * 10)


@pytest.fixture
def no_weights_anywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for variable in ("ASD_SD21", "ASD_X4_UPSCALER", "ASD_ARAD_LORA"):
        monkeypatch.delenv(variable, raising=False)


def test_each_model_weight_file_is_listed_with_its_sha256(tmp_path, no_weights_anywhere):
    sd21 = tmp_path / "sd21"
    fake_diffusers_folder(sd21, SD21_LAYOUT)
    rows = [r for r in model_rows("paper", WeightPaths(models={"sd21": str(sd21)}), hash_files=True)
            if r.file.startswith("SD 2.1 weights")]
    assert sorted(r.file for r in rows) == [f"SD 2.1 weights: {s}/model.safetensors"
                                            for s in ("text_encoder", "unet", "vae")]
    for row in rows:
        assert row.present and row.needed
        assert row.sha256 == hashlib.sha256(open(row.looked_in, "rb").read()).hexdigest()


def test_a_folder_without_weights_is_not_present(tmp_path, no_weights_anywhere):
    sd21 = tmp_path / "sd21"
    fake_diffusers_folder(sd21, SD21_LAYOUT, weights=False)
    (row,) = [r for r in model_rows("paper", WeightPaths(models={"sd21": str(sd21)}), True) if "SD 2.1" in r.file]
    assert not row.present and str(sd21) in row.looked_in


def test_tiny_needs_nothing_and_paper_reports_what_is_missing_where(no_weights_anywhere, tmp_path):
    text, complete = listing("tiny", WeightPaths(), hash_files=False)
    assert complete and "random weights" in text
    text, complete = listing("paper", WeightPaths(), hash_files=False)
    assert not complete
    assert "missing" in text and str(tmp_path / "hub") in text
    assert "stabilityai/stable-diffusion-x4-upscaler" in text and "$ASD_ARAD_LORA" in text
    assert "inception-2015-12-05.pt" in text


def test_the_weights_command_exits_0_when_complete_and_1_when_not(no_weights_anywhere, capsys):
    from benchmark.cli import main

    assert main(["weights", "--profile", "tiny", "--no-hash"]) == 0
    assert main(["weights", "--profile", "paper", "--no-hash"]) == 1
    assert "SD 2.1 weights" in capsys.readouterr().out
    assert main(["weights", "--profile", "nope"]) == 2


def test_the_api_lists_a_profiles_weights_and_whether_every_needed_one_is_there(no_weights_anywhere):
    from benchmark import api

    text, complete = api.weights("tiny", WeightPaths(), hash_files=False)
    assert complete and "random weights" in text
    text, complete = api.weights("paper", WeightPaths(), hash_files=False)
    assert not complete and "SD 2.1 weights" in text and "missing" in text
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        api.weights("nope")
