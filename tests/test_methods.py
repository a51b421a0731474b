"""The eight methods on the tiny profile: exact sizes, records, replay, tile plans, bad input."""

import json

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPanoramaPipeline, StableDiffusionPipeline
from PIL import Image

from helpers import CPU, load_sampler

from baselines.arad import TrainConfig, add_lora
from baselines.fast_path import FastPath
from baselines.lora import base_identity, read_arad_lora, save_arad_lora
from baselines.pipeline import Stages
from baselines.registry import get_method, methods
from baselines.settings import Seeds, Settings, centre_crop, nearest_bucket, working_size
from baselines.models import load_text_to_image
from baselines.base_models.sd21 import TINY_UNET
from baselines.stage1 import UNTILED, generate, multidiffusion_tiling
from baselines.stage2 import adain, paper_tiling, wavelet
from benchmark import api
from benchmark.errors import UsageError
from benchmark.runs.model_job import ModelJob
from benchmark.runs.runner import run
from benchmark.runs.samples import plan_samples
from benchmark.spec import RunSpec, parse_size
from datasets_fixtures import make_dataset

SIZES = ((604, 640), (1024, 256))
QUICK = dict(steps=2, sr_steps=2, progress=False, score=False)
BUILT_IN = [name for name, method in methods().items() if method.built_in]
STAGED = [name for name in BUILT_IN if isinstance(get_method(name).load, Stages)]  # the paper's methods and md


def stages_of(name: str) -> Stages:
    """A built-in method's stages (what its ``load`` is)."""
    stages = get_method(name).load
    assert isinstance(stages, Stages)
    return stages


def test_the_built_in_methods_are_the_papers_eight_fstd_in_stage_one_and_four_training_free_ones():
    assert BUILT_IN == ["sr-plus", "sr-tile", "sr-tile-plus", "ar-plus", "ar-tile", "asd", "md", "fstd-t2i", "fstd",
                        "hidiffusion", "scalecrafter", "scalecrafter-disperse", "scalecrafter-release",
                        "demofusion", "i-max"]


@pytest.mark.parametrize("name", STAGED)
def test_every_method_writes_images_of_exactly_the_requested_sizes_with_costs(tmp_path, name):
    method, stages = get_method(name), stages_of(name)
    pipeline = load_sampler(name, Settings(steps=1, sr_steps=2))
    plan = plan_samples(str(make_dataset(tmp_path / "set", SIZES)), tmp_path, prompt="a harbour at dawn")
    job = ModelJob(method, pipeline, plan, seed=1)
    results = run(job, len(SIZES), tmp_path / "run", progress=False)
    tmp_path = tmp_path / "run"

    for index, size in enumerate(SIZES):
        with Image.open(tmp_path / "samples" / f"{index:05d}.image.png") as image:
            assert image.size == (size[1], size[0])
    assert results["profile"] == "tiny" and results["method"] == name
    assert results["seconds_per_image"] > 0 and results["peak_memory_mib"] > 0
    assert "random (seed 0" in json.dumps(results["weights"])
    assert (results["stage1_unet_calls_per_image"] > 0) == (stages.base is not None)
    assert (results["stage2_denoiser_calls_per_image"] > 0) == (method.stage2 is not None)
    assert results["backbone"] == ("SD x4 upscaler" if method.stage2 else None)
    rows = results["per_image"]
    assert [row["size"] for row in rows] == [list(size) for size in SIZES]
    assert all(row["seconds"] > 0 and row["peak_memory_mib"] > 0 for row in rows)
    records = [json.loads((tmp_path / "samples" / f"{i:05d}.json").read_text()) for i in range(len(SIZES))]
    if stages.base and stages.stage1 != "bucket":  # SD's VAE: 604 px is worked at 608, then cut
        assert records[0]["stage1"]["size"] == [608, 640] and records[0]["output"]["cropped"]
    if stages.stage1 == "bucket":
        assert [r["stage1"]["size"] for r in records] == [[512, 512], [1024, 512]]
    if stages.stage1 == "multidiffusion":
        assert records[0]["stage1"]["tiling"] == multidiffusion_tiling().as_record()
        assert records[0]["stage1"]["tile_evaluations"] == 3 * 3  # 76x80 latent, views 64 at stride 8
    if name == "fstd":
        with Image.open(tmp_path / "samples" / "00000.hr.png") as high:  # scored later, by benchmark.metrics.scoring
            assert high.size == (640, 604)
        with Image.open(tmp_path / "samples" / "00000.lr.png") as low:
            assert low.size == (160, 151)


@pytest.mark.parametrize("name, strategy", [("sr-tile", "nonoverlap"), ("asd", "implicit")])  # ar-tile, sr-tile-plus:
# the same stage II, declared by their Stages (test_every_method_writes_images... runs each)
def test_stage_two_tile_plans_are_non_overlap_or_implicit(tmp_path, name, strategy):
    api.run(RunSpec(name, size=(768, 1024), limit=1, out=tmp_path, **{**QUICK, "sr_steps": 4}))
    plan = json.loads((tmp_path / "samples" / "00000.json").read_text())["stage2"]["tile_plan"]
    assert plan["strategy"] == strategy
    assert plan["tile"] == 128 and plan["tile_px"] == 512  # the paper's 512 px tiles at x4
    assert plan["tiles_per_step"] == 4  # 192x256 latent
    shifted = [offset for offset in plan["offsets"] if offset != [0, 0]]
    assert (len(shifted) > 0) == (strategy == "implicit")


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


def test_sizes_round_up_to_what_a_model_needs_and_crop_back():
    assert working_size((900, 1024), 8) == (904, 1024) and working_size((65, 67), 4) == (68, 68)
    assert nearest_bucket((900, 1024)) == (512, 512) and nearest_bucket((1024, 256)) == (1024, 512)
    image, (top, left) = centre_crop(torch.zeros(1, 3, 904, 1030), (900, 1024))
    assert image.shape[-2:] == (900, 1024) and (top, left) == (2, 3)
    assert paper_tiling("implicit", 4).as_record() == {
        "strategy": "implicit", "tile": 128, "weighting": "gaussian", "offset": "random",
        "offset_range": 64, "reset_every": 4, "fill": "eps", "tile_batch_size": 1}


def test_an_odd_size_comes_out_exact_through_both_stages(tmp_path):
    pipeline = load_sampler("sr-tile-plus", Settings(steps=1, sr_steps=2))
    image, record = pipeline("a kite", (65, 203), Seeds(1, 2, 3))
    assert image.shape[-2:] == (65, 203)
    assert record.stage2.size == (68, 204) and record.cropped and record.crop.working_size == (68, 204)


def test_colour_fixes_take_colour_from_the_reference():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((1, 3, 64, 64), generator=generator) * 0.5 - 0.5
    reference = torch.rand((1, 3, 64, 64), generator=generator) * 0.8
    fixed = adain(image, reference)
    torch.testing.assert_close(fixed.mean((-2, -1)), reference.mean((-2, -1)), atol=1e-4, rtol=0)
    torch.testing.assert_close(fixed.std((-2, -1)), reference.std((-2, -1)), atol=1e-3, rtol=0)
    flat = torch.full_like(image, 0.3)
    torch.testing.assert_close(wavelet(flat, reference).mean(), reference.mean(), atol=2e-2, rtol=0)
    torch.testing.assert_close(wavelet(image, image), image)


def test_half_precision_models_as_on_cuda_run_with_partial_tiles():
    """fp16 (the CUDA default): latents and tile weights stay fp32, or corner weights underflow."""
    pipeline = load_sampler("sr-tile-plus", Settings(steps=1, sr_steps=2, fast_path=FastPath(dtype="fp16")))
    image, record = pipeline("a kite", (130, 190), Seeds(1, 2, 3))
    assert pipeline.text_to_image.unet.dtype == torch.float16
    assert image.shape[-2:] == (130, 190) and torch.isfinite(image).all()
    assert record.stage2.details["latent_size"] == [33, 48]  # one tile smaller than 128 on both axes
