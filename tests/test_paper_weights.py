"""The paper profile finds SD 2.1-base and the x4 upscaler as users hold them now: under community
mirror ids in the hub cache, with only the fp16 variant files, and says what it loaded."""

import pytest
import torch
from hub_fixtures import (MIRROR_SD21, MIRROR_UPSCALER, hub_cache, lora_unet, offline_cache, save_external_lora,
                          save_sd21, snapshot_folder)

from helpers import CPU

from baselines.registry import methods
from baselines.models import load_text_to_image
from baselines.base_models.sd21 import SD21_REPO
from baselines.paper_weights import BASE, MissingWeightsError, WeightPaths, locate_piece, resolve_paper_weights
from benchmark import api
from benchmark.spec import RunSpec

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("variant", ["fp32", "fp16"])
def test_asd_runs_offline_from_a_mirror_cache_and_records_the_id_and_variant(variant, tmp_path, monkeypatch):
    offline_cache(monkeypatch, hub_cache(tmp_path / "hub", variant="fp16" if variant == "fp16" else None))
    lora = save_external_lora(tmp_path / "lora", lora_unet(load_text_to_image("tiny", CPU).unet))
    finished = api.run(RunSpec("asd", "paper", size=(64, 64), steps=2, sr_steps=2, limit=1, lora=str(lora),
                               score=False, runs=tmp_path / "runs", progress=False))
    assert finished.results["samples"] == 1
    stages = finished.results["weights"]
    assert stages["stage1"]["repo"] == MIRROR_SD21 and stages["stage2"]["repo"] == MIRROR_UPSCALER
    assert stages["stage1"]["variant"] == variant and stages["stage2"]["variant"] == variant
    assert stages["stage1"]["dtype"] == "torch.float32"  # fp16 files are cast to the run's dtype on a CPU
    assert MIRROR_SD21.replace("/", "--") in stages["stage1"]["weights"]


def test_fp16_only_files_load_as_the_same_weights_rounded(tmp_path, monkeypatch):
    offline_cache(monkeypatch, tmp_path / "hub")
    save_sd21(snapshot_folder(tmp_path / "hub", MIRROR_SD21), variant="fp16")
    loaded = load_text_to_image("paper", CPU, torch.float32, WeightPaths())
    tiny = load_text_to_image("tiny", CPU)
    assert loaded.variant == "fp16" and loaded.repo == MIRROR_SD21
    assert torch.equal(loaded.unet.conv_in.weight, tiny.unet.conv_in.weight.half().float())
    assert not torch.equal(loaded.unet.conv_in.weight, tiny.unet.conv_in.weight)  # really the fp16 file


def _fake_folder(folder, weights="model.safetensors"):
    for sub, config in {"unet": "config.json", "vae": "config.json", "text_encoder": "config.json",
                        "scheduler": "scheduler_config.json"}.items():
        (folder / sub).mkdir(parents=True)
        (folder / sub / config).write_text("{}")
        if weights and config == "config.json":
            (folder / sub / weights).write_bytes(b"0")
    return folder


def test_repo_ids_are_tried_in_order_original_first_and_the_users_before_all(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    offline_cache(monkeypatch, cache)
    _fake_folder(snapshot_folder(cache, MIRROR_SD21))
    assert locate_piece(BASE, WeightPaths()).repo == MIRROR_SD21
    _fake_folder(snapshot_folder(cache, SD21_REPO))
    assert locate_piece(BASE, WeightPaths()).repo == SD21_REPO
    _fake_folder(snapshot_folder(cache, "me/my-sd21"))
    monkeypatch.setenv("ASD_SD21_REPO", "me/my-sd21")
    assert locate_piece(BASE, WeightPaths()).repo == "me/my-sd21"
    given = _fake_folder(tmp_path / "folder")
    piece = locate_piece(BASE, WeightPaths(models={"sd21": str(given)}))
    assert piece.folder == given and piece.repo is None  # a folder given wins over the cache


def test_an_incomplete_snapshot_gives_way_to_a_complete_one_later_in_the_list(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    offline_cache(monkeypatch, cache)
    _fake_folder(snapshot_folder(cache, SD21_REPO), weights=None)
    _fake_folder(snapshot_folder(cache, MIRROR_SD21))
    assert locate_piece(BASE, WeightPaths()).repo == MIRROR_SD21


def test_a_folder_with_neither_weights_nor_fp16_variant_names_what_it_holds(tmp_path, monkeypatch):
    offline_cache(monkeypatch, tmp_path / "hub")
    folder = _fake_folder(tmp_path / "sd21", weights="v2-1_512-ema-pruned.ckpt")
    with pytest.raises(MissingWeightsError) as error:
        resolve_paper_weights((BASE,), WeightPaths(models={"sd21": str(folder)}))
    message = str(error.value)
    assert "lacks unet/ weights" in message and "fp16" in message
    assert "it holds config.json, v2-1_512-ema-pruned.ckpt" in message


def test_missing_everywhere_names_every_repo_id_tried(tmp_path, monkeypatch):
    offline_cache(monkeypatch, tmp_path / "hub")
    monkeypatch.setenv("ASD_X4_UPSCALER_REPO", "me/my-x4")
    with pytest.raises(MissingWeightsError) as error:
        resolve_paper_weights((BASE, "upscaler"), WeightPaths())
    message = str(error.value)
    for repo in (SD21_REPO, MIRROR_SD21, MIRROR_UPSCALER, "me/my-x4", "ASD_SD21_REPO", "--model-weights"):
        assert repo in message
    assert message.index("me/my-x4") < message.index(MIRROR_UPSCALER)


def test_weights_says_per_method_whether_it_can_run_and_exits_by_the_methods(tmp_path, monkeypatch, capsys):
    from benchmark.cli import main

    offline_cache(monkeypatch, tmp_path / "hub")
    _fake_folder(snapshot_folder(tmp_path / "hub", MIRROR_SD21))
    assert main(["weights", "--profile", "paper", "--no-hash", "--method", "sr-plus", "--method", "md"]) == 0
    out = capsys.readouterr().out
    methods_part = out.split("## Methods")[1].split("##")[0]
    assert [line.split("|")[2].strip() for line in methods_part.splitlines() if "| sr-plus" in line or "| md" in line] \
        == ["can run", "can run"]
    assert "## Models: what the methods need" in out and "## Scoring: the metric networks" in out
    assert out.index("## Models") < out.index("## Methods") < out.index("## Scoring")
    assert f"| {MIRROR_SD21}, fp32 |" in out and "asd" not in methods_part
    assert main(["weights", "--profile", "paper", "--no-hash", "--method", "asd"]) == 1
    out = capsys.readouterr().out
    assert "cannot run: missing ARAD LoRA, SD x4 upscaler" in out
    assert "python -m baselines.train_arad" in out and MIRROR_UPSCALER in out
    text, runnable = api.weights("paper", WeightPaths(), hash_files=False)
    on_sd21 = {name: method for name, method in methods().items() if "sd21" in method.model_names}
    runs = [name for name, method in on_sd21.items() if set(method.needs) <= {BASE}]
    assert not runnable and f"{len(runs)} of {len(on_sd21)} chosen method(s) can run" in text  # all by default
    assert main(["weights", "--profile", "paper", "--no-hash", "--method", "nope"]) == 2
