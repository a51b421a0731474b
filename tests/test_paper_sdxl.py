"""SDXL (and any registered base model) on the paper profile: its published layout (two text encoders, fp16
variant files only, no tokenizer folders) found in a folder given or the hub cache, loaded as saved, every
missing piece named in one error, listed by ``weights --model sdxl``, and run."""

import shutil
from dataclasses import replace

import pytest
import torch
from diffusers import AutoencoderKL
from hub_fixtures import offline_cache, save_sdxl, snapshot_folder
from transformers import CLIPTextModelWithProjection

from helpers import CPU

from baselines.base_models import register_base_model, unregister_base_model
from baselines.base_models.sd21 import SD21
from baselines.base_models.sdxl import SDXL_REPO, SDXL_SCHEDULER
from baselines.models import load_text_to_image
from baselines.paper_weights import (BASE, MissingWeightsError, WeightPaths, locate_piece, model_variable,
                                     repo_candidates, resolve_paper_weights)
from benchmark import api
from benchmark.cli import main
from benchmark.spec import RunSpec

pytestmark = pytest.mark.usefixtures("single_thread")
MIRROR = "someone/sdxl-base-1.0-mirror"


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    """One fp16-only stand-in of SDXL base 1.0's repo, copied where each test needs it."""
    return save_sdxl(tmp_path_factory.mktemp("sdxl") / "sdxl-base")


def copy_to(folder, destination):
    shutil.copytree(folder, destination, dirs_exist_ok=True)
    return destination


def test_sdxl_loads_from_a_mirror_in_the_cache_and_from_a_folder_as_saved_fp16(sdxl_folder, tmp_path, monkeypatch):
    offline_cache(monkeypatch, tmp_path / "hub")
    copy_to(sdxl_folder, snapshot_folder(tmp_path / "hub", MIRROR))
    monkeypatch.setenv("ASD_SDXL_REPO", MIRROR)
    assert repo_candidates(BASE, "sdxl") == (MIRROR, SDXL_REPO)
    loaded = load_text_to_image("paper", CPU, torch.float32, WeightPaths.from_environment(), model="sdxl")
    tiny = load_text_to_image("tiny", CPU, torch.float32, model="sdxl")
    assert (loaded.repo, loaded.variant, loaded.base_model) == (MIRROR, "fp16", "sdxl")
    assert isinstance(loaded.text_encoder_2, CLIPTextModelWithProjection)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        theirs = getattr(tiny, name).state_dict()
        ours = getattr(loaded, name).state_dict()
        assert ours.keys() == theirs.keys(), name
        assert all(torch.equal(ours[key], theirs[key].half().float()) for key in ours), name
    assert {key: loaded.scheduler_config[key] for key in SDXL_SCHEDULER} == SDXL_SCHEDULER  # DDIM's keys, Euler's file

    monkeypatch.setenv("ASD_SDXL", str(sdxl_folder))  # a folder given wins over the cache
    given = load_text_to_image("paper", CPU, torch.float32, WeightPaths.from_environment(), model="sdxl")
    assert given.repo is None and given.weights == str(sdxl_folder)
    assert torch.equal(given.unet.conv_in.weight, loaded.unet.conv_in.weight)


def test_model_weights_and_vae_options_give_the_run_models_folders(sdxl_folder, tmp_path, monkeypatch):
    offline_cache(monkeypatch, tmp_path / "hub")
    fix = tmp_path / "sdxl-vae-fp16-fix"  # a VAE repo's layout: config and weights at its top
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)  # weights of its own, so that loading the model's VAE instead would show
        vae = AutoencoderKL.from_config(load_text_to_image("tiny", CPU, model="sdxl").vae.config)
    vae.save_pretrained(fix)
    paths = RunSpec("sr-plus", "paper", model="sdxl", model_weights=str(sdxl_folder), vae=str(fix)).weight_paths()
    assert paths.models["sdxl"] == str(sdxl_folder) and paths.vaes["sdxl"] == str(fix)
    loaded = load_text_to_image("paper", CPU, torch.float32, paths, model="sdxl")
    assert torch.equal(loaded.vae.encoder.conv_in.weight, vae.encoder.conv_in.weight)
    assert str(fix) in loaded.weights and loaded.variant == "unet fp16, text_encoder fp16, text_encoder_2 fp16, vae fp32"


def test_a_folder_lacking_text_encoder_2_is_refused_in_one_error_naming_it_and_where(sdxl_folder, tmp_path,
                                                                                      monkeypatch):
    offline_cache(monkeypatch, tmp_path / "hub")
    folder = copy_to(sdxl_folder, tmp_path / "sdxl")
    shutil.rmtree(folder / "text_encoder_2")
    with pytest.raises(MissingWeightsError) as refused:
        resolve_paper_weights((BASE, "upscaler"), WeightPaths(models={"sdxl": str(folder)}), "sdxl")
    message = str(refused.value)
    assert f"SDXL weights: {folder} (from --model-weights or $ASD_SDXL) lacks text_encoder_2/config.json" in message
    assert "SD x4 upscaler: not found" in message  # every missing piece, in one error
    with pytest.raises(MissingWeightsError, match="text_encoder_2/config.json"):
        load_text_to_image("paper", CPU, paths=WeightPaths(models={"sdxl": str(folder)}), model="sdxl")


def test_weights_lists_sdxl_and_asd_on_it_needs_no_lora(sdxl_folder, tmp_path, monkeypatch, capsys):
    offline_cache(monkeypatch, tmp_path / "hub")
    assert main(["weights", "--profile", "paper", "--model", "sdxl", "--no-hash"]) == 1
    out = capsys.readouterr().out
    assert "SDXL weights" in out and SDXL_REPO in out and "$ASD_SDXL" in out and str(tmp_path / "hub") in out
    assert "| ar-plus" not in out  # a method that does not run on SDXL is not chosen by default
    copy_to(sdxl_folder, snapshot_folder(tmp_path / "hub", SDXL_REPO))
    assert main(["weights", "--profile", "paper", "--model", "sdxl", "--no-hash", "--method", "sr-plus",
                 "--method", "asd", "--method", "ar-plus"]) == 1
    out = capsys.readouterr().out
    assert "SDXL weights: text_encoder_2/model.fp16.safetensors" in out and f"| {SDXL_REPO}, fp16 |" in out
    status = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in out.split("## Methods")[1]
              .split("##")[0].splitlines() if line.startswith("| ") and "method" not in line}
    assert status == {"sr-plus": "can run", "asd": "cannot run: missing SD x4 upscaler",
                      "ar-plus": "does not run on sdxl (runs on sd21)"}


def test_sr_plus_runs_on_sdxl_paper_weights_given_as_a_folder(sdxl_folder, tmp_path, monkeypatch):
    offline_cache(monkeypatch, tmp_path / "hub")
    finished = api.run(RunSpec("sr-plus", "paper", model="sdxl", model_weights=str(sdxl_folder), size=(64, 64),
                               prompt="a lighthouse", steps=1, limit=1, score=False, runs=tmp_path / "runs",
                               progress=False))
    assert finished.results["samples"] == 1
    stage1 = finished.results["weights"]["stage1"]
    assert stage1["weights"] == str(sdxl_folder) and stage1["variant"] == "fp16" and stage1["repo"] is None


def test_a_plugin_model_has_variables_of_its_name_and_a_clear_error_without_repos(tmp_path, monkeypatch):
    offline_cache(monkeypatch, tmp_path / "hub")
    register_base_model(replace(SD21, name="my-sd21", repos=(), origin="a test"))
    try:
        assert model_variable("my-sd21", "_REPO") == "ASD_MY_SD21_REPO"
        monkeypatch.setenv("ASD_MY_SD21", str(tmp_path / "mine"))
        assert WeightPaths.from_environment().models == {"my-sd21": str(tmp_path / "mine")}
        monkeypatch.delenv("ASD_MY_SD21")
        problem = locate_piece(BASE, WeightPaths.from_environment(), "my-sd21").problem
        assert "no folder given (--model-weights or $ASD_MY_SD21)" in problem and "$ASD_MY_SD21_REPO" in problem
    finally:
        unregister_base_model("my-sd21")


def test_asd_on_sdxl_paper_looks_for_no_lora(tmp_path, monkeypatch):
    offline_cache(monkeypatch, tmp_path / "hub")
    with pytest.raises(MissingWeightsError) as refused:
        api.run(RunSpec("asd", "paper", model="sdxl", size=(64, 64), limit=1, score=False, out=tmp_path / "run"))
    message = str(refused.value)
    assert "SDXL weights" in message and "SD x4 upscaler" in message and "LoRA" not in message


def test_a_plugin_method_that_needs_sd21_by_its_old_name_needs_the_run_models_weights():
    from baselines.registry import Method

    assert Method("mine", "a method", lambda method, context: None, needs=("sd21", "upscaler")).needs \
        == (BASE, "upscaler")
