"""The methods run through the API on the tiny profile: replay from a seed, the tiny LoRA, the default runs, bad input,
stage I against diffusers' pipelines, half precision."""

import json

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPanoramaPipeline, StableDiffusionPipeline

from helpers import CPU, load_sampler

from baselines.arad import TrainConfig, add_lora
from baselines.fast_path import FastPath
from baselines.lora import base_identity, read_arad_lora, save_arad_lora
from baselines.registry import get_method
from baselines.settings import Seeds, Settings
from baselines.models import load_text_to_image
from baselines.base_models.sd21 import TINY_UNET
from baselines.stage1 import UNTILED, generate, multidiffusion_tiling
from benchmark import api
from benchmark.errors import UsageError
from benchmark.spec import RunSpec, parse_size

QUICK = dict(steps=2, sr_steps=2, progress=False, score=False)


def test_a_run_replays_bit_identically_from_its_seed(tmp_path):
    def images(out, seed, limit=2):
        api.run(RunSpec("asd", size=(200, 330), limit=limit, seed=seed, out=out, **QUICK))
        return [(out / "samples" / f"{i:05d}.image.png").read_bytes() for i in range(limit)]

    first, again, other = images(tmp_path / "a", 3), images(tmp_path / "b", 3), images(tmp_path / "c", 4, limit=1)
    assert first == again == images(tmp_path / "a", 3)  # the last one resumes: nothing to redo
    assert json.loads((tmp_path / "a" / "results.json").read_text())["resumed_samples"] == 2
    assert first[0] != other[0] and first[0] != first[1]
    record = json.loads((tmp_path / "a" / "samples" / "00000.json").read_text())
    assert record == {**json.loads((tmp_path / "b" / "samples" / "00000.json").read_text()),
                      **{k: record[k] for k in ("seconds", "peak_memory_mib", "peak_reserved_mib")}}


def test_arad_methods_use_the_tiny_lora_trained_by_the_arad_code(tmp_path, asd_cache):
    outputs = {}
    for name in ("sr-plus", "ar-plus"):
        api.run(RunSpec(name, size=(128, 192), limit=1, out=tmp_path / name, **QUICK))
        outputs[name] = (tmp_path / name / "samples" / "00000.image.png").read_bytes()
    assert outputs["sr-plus"] != outputs["ar-plus"]
    lora = json.loads((tmp_path / "ar-plus" / "results.json").read_text())["lora"]
    assert lora["path"].startswith(str(asd_cache)) and lora["base"] == "tiny/sd21"
    assert read_arad_lora(lora["path"]).metadata["data"]["source"].startswith("generated")


def test_the_default_asd_run_is_tiny_on_three_shapes_of_the_synthetic_set(tmp_path):
    api.run(RunSpec("asd", progress=False, score=False, out=tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["profile"] == "tiny" and results["samples"] == 3
    assert results["dataset"]["name"] == "synthetic" and results["dataset"]["items"] == 21
    assert [row["size"] for row in results["per_image"]] == [[256, 1024], [768, 1024], [1024, 256]]
    assert results["steps"] == 4 and results["sr_steps"] == 8 and results["guidance"] == 7.5


def test_one_prompt_at_one_size_is_one_sample(tmp_path):
    api.run(RunSpec("sr-plus", prompt="a blue kite", size=(96, 160), out=tmp_path, **QUICK))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["samples_plan"] == [{"item": None, "prompt": "a blue kite", "size": [96, 160]}]
    assert results["dataset"] is None
    assert results["samples"] == 1
    assert json.loads((tmp_path / "samples" / "00000.json").read_text())["prompt"] == "a blue kite"


def test_the_default_run_is_still_the_oracle(tmp_path):
    from benchmark.cli import build_parser

    method = build_parser().parse_args(["run"]).method  # the command line's default method
    assert RunSpec(method).resolved().profile == "oracle"
    finished = api.run(RunSpec(method, size=(256, 256), steps=2, limit=1, progress=False, out=tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["method"] == "fstd" and results["profile"] == "oracle" and finished.results == results


def test_every_method_and_profile_is_known_with_a_summary():
    from baselines.profiles import profiles

    for name in ("fstd", "sr-plus", "sr-tile", "sr-tile-plus", "ar-plus", "ar-tile", "asd", "md"):
        assert get_method(name).summary
    assert list(profiles()) == ["oracle", "tiny", "paper-arch", "paper"]
    assert all(profile.description for profile in profiles().values())


@pytest.mark.parametrize("fields, message", [
    (dict(method="sdxl"), "unknown method 'sdxl'; known methods: sr-plus, sr-tile, "
                          "sr-tile-plus, ar-plus, ar-tile, asd, md, fstd"),
    (dict(method="asd", size=(63, 512)), "too small: each side must be at least 64 px"),
    (dict(method="asd", profile="oracle"), "runs --method fstd only"),
    (dict(method="asd", tiling="explicit"), "asd fixes its own (implicit)"),
    (dict(method="md", steps=0), "steps must be at least 1"),
    (dict(method="fstd", profile="tiny", colour_fix="sepia"), "unknown colour fix 'sepia'"),
])
def test_bad_input_is_refused_with_one_clear_message(tmp_path, fields, message):
    with pytest.raises(ValueError) as error:
        api.run(RunSpec(**{**fields, "out": tmp_path / "run"}))
    assert message in str(error.value)
    assert not (tmp_path / "run").exists()


def test_a_size_that_is_not_hxw_is_refused():
    with pytest.raises(UsageError, match="not of the form HxW"):
        parse_size("512by512")


def test_a_lora_for_another_base_model_is_refused(tmp_path):
    other = load_text_to_image("tiny", CPU).unet.__class__(**TINY_UNET)  # another random init
    add_lora(other, TrainConfig())
    save_arad_lora(other, tmp_path / "lora", {"base": base_identity(other, "another tiny UNet"),
                                              "lora": {"rank": 4}, "training": {"bucket_sizes": []}})
    with pytest.raises(ValueError, match="was trained for base another tiny UNet"):
        api.run(RunSpec("ar-plus", lora=str(tmp_path / "lora"), out=tmp_path / "run", **QUICK))


def test_a_file_that_is_not_a_lora_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a LoRA")
    with pytest.raises(ValueError, match="is not a LoRA"):
        api.run(RunSpec("asd", lora=str(tmp_path / "notes.txt"), out=tmp_path / "run", **QUICK))


def _diffusers_pipeline(cls, models):
    pipe = cls(vae=models.vae, text_encoder=models.text_encoder, tokenizer=None, unet=models.unet,
               scheduler=DDIMScheduler.from_config(models.scheduler_config), safety_checker=None,
               feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("cls, tiling, size", [
    (StableDiffusionPipeline, UNTILED, (256, 320)),
    (StableDiffusionPanoramaPipeline, multidiffusion_tiling(), (512, 768)),  # 1 x 5 views
])
def test_stage_one_matches_diffusers_pipelines_from_the_same_seed(cls, tiling, size):
    models = load_text_to_image("tiny", CPU)
    negative, positive = models.encode_text(["", "a cat"]).chunk(2)
    ours = generate(models, "a cat", size, steps=3, tiling=tiling, generator=torch.Generator().manual_seed(5))
    latents = torch.randn((1, 4, size[0] // 8, size[1] // 8), generator=torch.Generator().manual_seed(5))
    theirs = _diffusers_pipeline(cls, models)(
        prompt_embeds=positive, negative_prompt_embeds=negative, height=size[0], width=size[1],
        num_inference_steps=3, guidance_scale=7.5, latents=latents, output_type="pt").images
    torch.testing.assert_close(ours.image / 2 + 0.5, theirs, atol=1e-5, rtol=0)


def test_half_precision_models_as_on_cuda_run_with_partial_tiles():
    """fp16 (the CUDA default): latents and tile weights stay fp32, or corner weights underflow."""
    pipeline = load_sampler("sr-tile-plus", Settings(steps=1, sr_steps=2, fast_path=FastPath(dtype="fp16")))
    image, record = pipeline("a kite", (130, 190), Seeds(1, 2, 3))
    assert pipeline.text_to_image.unet.dtype == torch.float16
    assert image.shape[-2:] == (130, 190) and torch.isfinite(image).all()
    assert record.stage2.details["latent_size"] == [33, 48]  # one tile smaller than 128 on both axes
