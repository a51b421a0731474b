"""The training-free methods on SDXL (``--model sdxl``) against their references: ``hidiffusion`` against the package
applied to diffusers' ``StableDiffusionXLPipeline`` on the same tiny modules, ``scalecrafter`` against the release's
SDXL ``pipeline_processor`` (its fixture, made by scripts/scalecrafter-reference.py)."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionXLPipeline

from helpers import CPU, load_sampler, one_thread

from baselines.base_models.sdxl import SDXL_REPO
from baselines.highres.hidiffusion_sampler import chosen_settings
from baselines.highres.hidiffusion_shim import import_hidiffusion
from baselines.models import load_text_to_image
from baselines.settings import Seeds, Settings
from baselines.stage1 import denoise
from benchmark import api
from benchmark.spec import RunSpec

PROMPT, SEEDS = "a lighthouse", Seeds(3, 4, 5)


def package_applied(module, window: list[int]) -> bool:
    """Whether the package's own state on ``module`` after a sample is the window the record names: its
    aggressive blocks' ``[T1_start, T1_end)``, otherwise ``[0, T1)``."""
    if getattr(module, "aggressive_raunet", False) and not isinstance(module, torch.nn.Conv2d):
        return [module.T1_start, module.T1_end] == window
    return [0, module.T1] == window


# --- HiDiffusion ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(128, 128), (128, 192)])
def test_hidiffusion_on_sdxl_equals_the_package_applied_to_diffusers_sdxl_pipeline(size):
    """Same modules, seeds and 7 steps (the package's aggressive RAU-Net: its samplers in step 0, its blocks in
    step 1); the reference pipeline derives its micro-conditioning from height and width, ours passes our
    ``time_ids``."""
    steps, latent_hw = 7, (size[0] // 8, size[1] // 8)
    with one_thread():
        sampler = load_sampler("hidiffusion", Settings(steps=steps, sr_steps=1), model="sdxl")
        negative, positive = sampler.models.guidance_pair(PROMPT, size)
        ours, record = sampler.latent(negative, positive, latent_hw, SEEDS)
        image, sample = sampler(PROMPT, size, SEEDS)

        models = load_text_to_image("tiny", CPU, model="sdxl")
        negative, positive = models.guidance_pair(PROMPT, size)
        plain, _ = denoise(models, negative, positive, latent_hw, steps=steps, guidance=sampler.settings.guidance,
                           generator=SEEDS.generator("noise"))
        pipe = StableDiffusionXLPipeline(vae=models.vae, text_encoder=models.text_encoder,
                                         text_encoder_2=models.text_encoder_2, tokenizer=None, tokenizer_2=None,
                                         unet=models.unet, scheduler=DDIMScheduler.from_config(models.scheduler_config),
                                         add_watermarker=False)
        pipe.register_to_config(_name_or_path=SDXL_REPO)
        pipe.set_progress_bar_config(disable=True)
        import_hidiffusion().apply_hidiffusion(pipe)
        torch.manual_seed(SEEDS.offsets)  # the package's window shifts come from the global generator
        reference = pipe(prompt_embeds=positive.hidden, negative_prompt_embeds=negative.hidden,
                         pooled_prompt_embeds=positive.added["text_embeds"],
                         negative_pooled_prompt_embeds=negative.added["text_embeds"], height=size[0], width=size[1],
                         num_inference_steps=steps, guidance_scale=sampler.settings.guidance,
                         generator=SEEDS.generator("noise"), output_type="latent").images
        decoded = models.vae.decode(reference / models.vae.config.scaling_factor).sample.clamp(-1, 1)
    difference = (ours - reference).abs().max().item()
    print(f"hidiffusion on tiny SDXL {size} vs the package on StableDiffusionXLPipeline: max |latent diff| "
          f"{difference:.3g}")
    assert difference <= 1e-5
    assert (image - decoded).abs().max() <= 1e-4 and image.shape == (1, 3, *size)
    assert (ours - plain).abs().max() > 1e-3  # the package changed the UNet
    chosen = record.details["hidiffusion"]
    assert chosen == {**chosen_settings(latent_hw, steps, "sdxl"), "window_shift_seed": SEEDS.offsets}
    assert chosen["table"] == "sdxl_2048" and chosen["aggressive_raunet"] and chosen["name_or_path"] == SDXL_REPO
    assert chosen["window_attention_modules"] == import_hidiffusion().hidiffusion.sdxl_hidiffusion_key()[
        "windown_attn_module_key"]
    modules = dict(sampler.pipe.unet.named_modules())
    assert set(chosen["window_attention_modules"]) <= set(modules)  # tiny SDXL has every module the keys name
    for name, window in chosen["raunet_steps"].items():  # the package's own state after the sample
        assert package_applied(modules[name], window), name
    assert sorted(map(tuple, chosen["raunet_steps"].values())) == [(0, 1), (0, 1), (1, 2), (1, 2)]
    assert sample.stage1.details["model"] == "SDXL" and sample.stage1.details["hidiffusion"]["table"] == "sdxl_2048"
    assert sampler.parameters()["pipeline"].startswith("diffusers StableDiffusionXLPipeline")


def test_hidiffusion_takes_sdxls_second_table_from_a_512_latent_and_sd21s_from_256():
    """The package's own tests on the latent size (its blocks' ``forward``), per model."""
    big = chosen_settings((512, 512), 10, "sdxl")
    assert big["table"] == "sdxl_4096" and not big["aggressive_raunet"]
    assert big["raunet_steps"] == {"down_blocks.1": [0, 7], "down_blocks.1.downsamplers.0.conv": [0, 3],
                                   "up_blocks.1": [0, 7], "up_blocks.0.upsamplers.0.conv": [0, 3]}
    assert chosen_settings((511, 1024), 10, "sdxl")["table"] == "sdxl_2048"
    assert chosen_settings((256, 256), 10)["table"] == "sd15_2048" and not chosen_settings((256, 256), 10)[
        "aggressive_raunet"]
    with pytest.raises(ValueError, match="not 'sd3'"):
        chosen_settings((64, 64), 10, "sd3")


# --- ScaleCrafter (its loop against the release: tests/test_scalecrafter_release.py) -----------------------

def test_scalecrafter_at_sdxls_native_size_is_plain_sdxl():
    """1024² has no row of the release: SDXL's training size, no re-dilation, the ``sr-plus`` loop's latent."""
    with one_thread():
        sampler = load_sampler("scalecrafter", Settings(steps=1, sr_steps=1), model="sdxl")
        negative, positive = sampler.models.guidance_pair(PROMPT, (1024, 1024))
        ours, record = sampler.latent(negative, positive, (128, 128), SEEDS)
        plain, _ = denoise(sampler.models, negative, positive, (128, 128), steps=1, guidance=sampler.settings.guidance,
                           generator=SEEDS.generator("noise"))
    assert torch.equal(ours, plain)
    assert record.details["scalecrafter"]["settings_for"] == "1024x1024" and record.details["scalecrafter"]["exact"]
    assert record.details["scalecrafter"]["convolutions"] == {"dilate": 0, "ndcfg": 0}


# --- as methods of the suite ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["hidiffusion", "scalecrafter", "scalecrafter-disperse", "scalecrafter-release"])
def test_each_runs_on_sdxl_at_an_exact_size_and_names_the_model_and_its_settings(tmp_path, name):
    with one_thread():
        finished = api.run(RunSpec(name, model="sdxl", size=(192, 320), prompt=PROMPT, limit=1, steps=1,
                                   progress=False, score=False, out=tmp_path))
    results = finished.results
    assert results["per_image"][0]["size"] == [192, 320] and results["model"] == "sdxl"
    record = json.loads((tmp_path / "samples" / "00000.json").read_text())
    stage1 = record["stage1"]
    assert stage1["model"] == "SDXL" and stage1["size"] == [192, 320]
    settings = stage1["hidiffusion" if name == "hidiffusion" else "scalecrafter"]
    if name == "hidiffusion":
        assert settings["table"] == "sdxl_2048" and settings["name_or_path"] == SDXL_REPO
    else:
        assert settings["settings_for"] == "1024x1024" and results["method_settings"]["model"] == "sdxl"
        assert [row["size"] for row in results["method_settings"]["settings"]] == [
            "1024x1024", "2048x2048", "2560x2560", "2048x4096", "4096x4096"]
