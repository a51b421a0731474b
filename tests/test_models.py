"""Model profiles: published parameter counts, tiny models, the paper profile's weight lookup."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from helpers import CPU

from baselines.models import (UPSCALER_LOW_RES_SCHEDULER, UPSCALER_SCHEDULER, load_text_to_image, load_upscaler,
                              meta_models, parameter_count)
from baselines.paper_weights import BASE, MissingWeightsError, WeightPaths, resolve_paper_weights
from baselines.vae_tiling import vae_factor
from benchmark import api
from benchmark.spec import RunSpec



def test_paper_arch_models_have_the_published_parameter_counts():
    models = meta_models("paper-arch")
    assert all(next(m.parameters()).device.type == "meta" for m in models.values())
    counts = {name: parameter_count(model) for name, model in models.items()}
    assert counts["unet"] == 865_910_724  # SD 2.1-base UNet, 865.9 M
    assert counts["upscaler_unet"] == 473_398_020  # SD x4 upscaler UNet, 473 M
    assert counts["text_encoder"] == 340_387_840  # OpenCLIP ViT-H/14 text tower, 23 layers
    assert counts["vae"] == 83_653_863
    assert vae_factor(models["vae"]) == 8 and vae_factor(models["upscaler_vae"]) == 4


def test_tiny_models_are_fixed_seed_with_sd_factors_and_openclip_tokens():
    first, second = load_text_to_image("tiny", CPU), load_text_to_image("tiny", CPU)
    for a, b in zip(first.unet.state_dict().values(), second.unet.state_dict().values()):
        assert torch.equal(a, b)
    assert vae_factor(first.vae) == 8
    assert vae_factor(load_upscaler("tiny", CPU).vae) == 4
    ids = first.tokenizer(["a cat"])
    assert ids.shape == (1, 77) and ids[0, :4].tolist() == [49406, 320, 2368, 49407]
    assert ids[0, 4:].eq(0).all()  # SD 2's pad token "!" is id 0
    assert first.encode_text(["", "a cat"]).shape == (2, 77, first.text_encoder.config.hidden_size)


def _save_as_paper_folder(folder, models, schedulers: dict):
    models.unet.save_pretrained(folder / "unet")
    models.vae.save_pretrained(folder / "vae")
    for subfolder, config in schedulers.items():
        config.save_pretrained(folder / subfolder)


def test_paper_profile_loads_local_folders_given_by_environment(tmp_path, monkeypatch):
    tiny = load_text_to_image("tiny", CPU)
    sd21 = tmp_path / "sd21"
    _save_as_paper_folder(sd21, tiny, {"scheduler": DDIMScheduler(**tiny.scheduler_config)})
    tiny.text_encoder.save_pretrained(sd21 / "text_encoder")
    monkeypatch.setenv("ASD_SD21", str(sd21))
    loaded = load_text_to_image("paper", CPU, paths=WeightPaths.from_environment())
    assert loaded.weights == str(sd21)
    assert torch.equal(loaded.unet.conv_in.weight, tiny.unet.conv_in.weight)
    assert loaded.scheduler_config["steps_offset"] == 1

    upscaler = load_upscaler("tiny", CPU)
    folder = tmp_path / "x4"
    _save_as_paper_folder(folder, upscaler, {"scheduler": DDIMScheduler(**UPSCALER_SCHEDULER),
                                             "low_res_scheduler": DDPMScheduler(**UPSCALER_LOW_RES_SCHEDULER)})
    tiny.text_encoder.save_pretrained(folder / "text_encoder")
    loaded = load_upscaler("paper", CPU, paths=WeightPaths(upscaler=str(folder)))
    assert loaded.scheduler_config["prediction_type"] == "v_prediction"
    assert loaded.prompt_embedding.shape == (1, 77, tiny.text_encoder.config.hidden_size)


def test_missing_paper_weights_are_listed_in_one_error_with_where_they_were_looked_for(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    for variable in ("ASD_SD21", "ASD_X4_UPSCALER", "ASD_ARAD_LORA"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(MissingWeightsError) as error:
        resolve_paper_weights((BASE, "lora", "upscaler"), WeightPaths.from_environment())
    message = str(error.value)
    assert "SD 2.1 weights: not found in the Hugging Face cache " + str(cache) in message
    assert "stabilityai/stable-diffusion-2-1-base" in message and "ASD_SD21" in message
    assert "SD x4 upscaler: not found" in message and "stabilityai/stable-diffusion-x4-upscaler" in message
    assert "ARAD LoRA: no folder given (--lora or $ASD_ARAD_LORA)" in message


def test_a_folder_without_weights_is_named_with_what_it_lacks(tmp_path):
    sd21 = tmp_path / "sd21"
    (sd21 / "unet").mkdir(parents=True)
    (sd21 / "unet" / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError) as error:
        resolve_paper_weights((BASE, "lora"), WeightPaths(models={"sd21": str(sd21)}, lora=str(tmp_path / "nope")))
    message = str(error.value)
    assert f"SD 2.1 weights: {sd21} (from --sd21, --model-weights or $ASD_SD21) lacks unet/ weights" in message
    assert "vae/config.json" in message and "scheduler/scheduler_config.json" in message
    assert f"ARAD LoRA: {tmp_path / 'nope'} does not exist" in message


def test_a_run_reports_missing_paper_weights_before_loading_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for variable in ("ASD_SD21", "ASD_X4_UPSCALER", "ASD_ARAD_LORA"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(MissingWeightsError) as refused:
        api.run(RunSpec("asd", "paper", out=tmp_path / "run"))
    error = str(refused.value)
    for piece in ("SD 2.1 weights", "SD x4 upscaler", "ARAD LoRA"):
        assert piece in error
    assert not (tmp_path / "run").exists()
    with pytest.raises(MissingWeightsError) as refused:
        api.run(RunSpec("sr-plus", "paper", out=tmp_path / "run"))
    error = str(refused.value)
    assert "SD 2.1 weights" in error and "upscaler" not in error and "LoRA" not in error
