"""The field's training-free methods (HiDiffusion, ScaleCrafter, DemoFusion) against their references."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, StableDiffusionPipeline

from helpers import CPU, load_sampler, one_thread

from baselines.highres import scalecrafter
from baselines.highres.demofusion import DemoFusionSampler, dilated_prediction, phase_sizes, skip_weight
from baselines.highres.hidiffusion_shim import import_hidiffusion
from baselines.highres.redilation import redilated, redilated_conv
from baselines.models import load_text_to_image, meta_models
from baselines.base_models.sd21 import SD21_REPO
from baselines.registry import get_method
from baselines.settings import Seeds, Settings
from baselines.stage1 import generate
from benchmark import api
from benchmark.spec import RunSpec

TRAINING_FREE = ("hidiffusion", "scalecrafter", "demofusion")
SEEDS = Seeds(3, 4, 5)


def plain_sd(size, steps):
    """SD 2.1 untiled at ``size`` (what ``sr-plus`` runs), from the same noise seed."""
    models = load_text_to_image("tiny", CPU)
    return generate(models, "a lighthouse", size, steps=steps, generator=SEEDS.generator("noise")).image


# --- ScaleCrafter ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dilation, stride", [(2, 1), (3, 1), (4, 2)])
def test_a_redilated_convolution_is_conv2d_with_that_dilation_on_the_same_weights(dilation, stride):
    conv = torch.nn.Conv2d(4, 6, 3, stride=stride, padding=1)
    x = torch.randn(2, 4, 16, 24)
    expected = F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=dilation, dilation=dilation)
    assert torch.allclose(redilated_conv(conv, x, dilation), expected, atol=1e-6)


def test_a_fractional_dilation_keeps_the_plain_output_size_and_redilation_is_undone_after_the_block():
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1))
    x = torch.randn(1, 4, 20, 20)
    plain = model(x)
    with redilated(model, {"0": 2.5}):
        assert model(x).shape == plain.shape and not torch.allclose(model(x), plain)
    assert torch.equal(model(x), plain)
    with pytest.raises(ValueError, match="no convolution named nope"):
        with redilated(model, {"nope": 2}):
            pass


@pytest.mark.parametrize("size, lines", [((1024, 1024), 39), ((1280, 1280), 39), ((1024, 2048), 39),
                                         ((2048, 2048), 40)])
def test_the_settings_name_as_many_sd21_convolutions_as_the_released_files(size, lines):
    """The release's dilate_settings files have 39 or 40 lines; each names a 3x3 conv of SD 2.1 (and of tiny)."""
    row, transposed = scalecrafter.nearest_row(size)
    assert row.size == size and not transposed
    for unet in (meta_models()["unet"], load_text_to_image("tiny", CPU).unet):
        assert len(scalecrafter.module_dilations(unet, row.blocks)) == lines


def test_a_size_without_settings_takes_the_nearest_row_in_either_orientation():
    assert scalecrafter.nearest_row((768, 1536))[0].size == (1024, 2048)
    assert scalecrafter.nearest_row((2048, 1024)) == (scalecrafter.nearest_row((1024, 2048))[0], True)
    assert scalecrafter.nearest_row((576, 512))[0].size == (512, 512)  # near native: no re-dilation
    unet = meta_models()["unet"]
    row = scalecrafter.nearest_row((2048, 2048))[0]
    late = scalecrafter.module_dilations(unet, row.blocks, dilation_scale=0.1)  # progressive: shrinks to 2
    assert set(late.values()) == {2}


def test_scalecrafter_at_the_native_size_is_plain_sd():
    with one_thread():
        sampler = load_sampler("scalecrafter", Settings(steps=1, sr_steps=1))
        image, record = sampler("a lighthouse", (512, 512), SEEDS)
        assert torch.allclose(image, plain_sd((512, 512), 1), atol=1e-5)
    assert record.stage1.details["scalecrafter"]["settings_for"] == "512x512"


@pytest.mark.parametrize("row_size, calls", [((1024, 1024), 4), ((2048, 2048), 4 + 3)])
def test_scalecrafter_redilates_and_damps_guidance_where_its_settings_say(monkeypatch, row_size, calls):
    """A row's settings at a small size (chosen by hand, for seconds): re-dilation changes the image, and
    damped guidance (2048² only: 37 of 50 steps, so 3 of 4) adds one unconditional pass a step."""
    row = scalecrafter.nearest_row(row_size)[0]
    monkeypatch.setattr(scalecrafter, "nearest_row", lambda size, model: (row, False))
    with one_thread():
        sampler = load_sampler("scalecrafter", Settings(steps=4, sr_steps=1))
        image, record = sampler("a lighthouse", (256, 256), SEEDS)
        assert not torch.allclose(image, plain_sd((256, 256), 4), atol=1e-3)
    settings = record.stage1.details["scalecrafter"]
    assert settings["settings_for"] == "x".join(map(str, row_size)) and not settings["exact"]
    assert settings["dilate_steps"] == round(row.dilate_tau * 4 / 50) and record.stage1.unet_calls == calls


# --- HiDiffusion ----------------------------------------------------------------------------------

def test_hidiffusion_equals_the_package_applied_to_diffusers_own_pipeline():
    """Same models, seed and steps: our method against StableDiffusionPipeline + apply_hidiffusion."""
    size, steps = (384, 512), 3  # 3 steps: the package's RAU-Net runs in the first int(0.4 * 3) = 1
    with one_thread():
        sampler = load_sampler("hidiffusion", Settings(steps=steps, sr_steps=1))
        ours, record = sampler("a lighthouse", size, SEEDS)

        models = load_text_to_image("tiny", CPU)
        pipe = StableDiffusionPipeline(models.vae, models.text_encoder, None, models.unet,
                                       DDIMScheduler.from_config(models.scheduler_config), None, None,
                                       requires_safety_checker=False)
        pipe.register_to_config(_name_or_path=SD21_REPO)
        pipe.set_progress_bar_config(disable=True)
        import_hidiffusion().apply_hidiffusion(pipe)
        negative, positive = models.encode_text(["", "a lighthouse"]).chunk(2)
        torch.manual_seed(SEEDS.offsets)  # the package's window shifts come from the global generator
        reference = pipe(prompt_embeds=positive, negative_prompt_embeds=negative, height=size[0], width=size[1],
                         num_inference_steps=steps, generator=SEEDS.generator("noise"), output_type="pt").images
        assert torch.allclose((ours + 1) / 2, reference, atol=1e-4)
        assert not torch.allclose(ours, plain_sd(size, steps), atol=1e-3)  # the package changed the UNet
    chosen = record.stage1.details["hidiffusion"]
    assert chosen["table"] == "sd15_1024" and chosen["T1_steps"] == 1
    assert chosen["package_version"] == importlib.metadata.version("hidiffusion")
    assert sampler.describe()["method_settings"]["version"] == importlib.metadata.version("hidiffusion")


# --- DemoFusion -----------------------------------------------------------------------------------

def test_demofusion_at_the_native_size_is_plain_sd():
    with one_thread():
        sampler = load_sampler("demofusion", Settings(steps=1, sr_steps=1))
        image, record = sampler("a lighthouse", (512, 512), SEEDS)
        assert torch.allclose(image, plain_sd((512, 512), 1), atol=1e-5)
    assert len(record.stage1.details["demofusion"]["phases"]) == 1


@pytest.mark.parametrize("shape, k", [((1, 4, 16, 16), 2), ((1, 4, 13, 17), 3), ((2, 4, 9, 8), 4)])
def test_each_dilated_sampling_step_predicts_every_latent_pixel_exactly_once(shape, k):
    latent = torch.randn(shape)
    seen = []
    prediction, coverage, calls = dilated_prediction(latent, lambda z: seen.append(z.shape) or z * 2, k, batch=3)
    assert torch.equal(coverage, torch.ones_like(coverage)) and coverage.shape[-2:] == latent.shape[-2:]
    assert torch.equal(prediction, latent * 2)  # each sub-latent went back where it came from
    assert calls == -(-k * k // 3) and all(s[-2:] == (-(-shape[2] // k), -(-shape[3] // k)) for s in seen)


def test_the_skip_residual_weight_follows_its_cosine_schedule_at_both_ends():
    assert skip_weight(1000, 1000) == pytest.approx(1) and skip_weight(0, 1000) == pytest.approx(0)
    weights = [skip_weight(t, 1000) for t in range(1000, -1, -50)]
    assert weights == sorted(weights, reverse=True)
    with one_thread():
        sampler = load_sampler("demofusion", Settings(steps=2, sr_steps=1))
        _, record = sampler("a lighthouse", (512, 1024), SEEDS)
    phases = record.stage1.details["demofusion"]["phases"]
    assert [p["size"] for p in phases] == [[256, 512], [512, 1024]] and phases[1]["dilation"] == 2
    timesteps = DDIMScheduler.from_config(sampler.models.scheduler_config)
    timesteps.set_timesteps(2)
    ends = phases[1]["skip_residual_weight"]
    assert ends["first"] == pytest.approx(skip_weight(int(timesteps.timesteps[0]), 1000))
    assert ends["last"] == pytest.approx(skip_weight(int(timesteps.timesteps[-1]), 1000))
    assert phases[1]["local_views"] == 3  # 64x128 latent, 64-wide views at stride 32


def test_phases_grow_by_the_native_size_to_the_target():
    assert phase_sizes((1024, 1024), 512) == [(512, 512), (1024, 1024)]
    assert phase_sizes((768, 1536), 512) == [(256, 512), (512, 1024), (768, 1536)]
    assert phase_sizes((500, 500), 512) == [(512, 512)]
    assert isinstance(get_method("demofusion").load.__self__, type)
    assert issubclass(get_method("demofusion").load.__self__, DemoFusionSampler)


# --- as methods of the suite ----------------------------------------------------------------------

@pytest.mark.parametrize("name", TRAINING_FREE)
def test_each_runs_at_an_exact_size_and_names_its_settings(tmp_path, name):
    with one_thread():
        finished = api.run(RunSpec(name, size=(320, 640), prompt="a lighthouse", limit=1, steps=1, progress=False,
                                   score=False, out=tmp_path))
    results = finished.results
    assert results["per_image"][0]["size"] == [320, 640] and results["peak_memory_mib"] > 0
    record = json.loads((tmp_path / "samples" / "00000.json").read_text())
    assert name in record["stage1"]  # the settings it chose for this sample
    assert results["method_settings"] and get_method(name).needs == ("base",)


@pytest.mark.parametrize("where", ["mirror", "folder"])
def test_hidiffusion_runs_on_sd21_from_a_community_mirror_or_a_local_folder(where, tmp_path, monkeypatch):
    """The paper profile's weights as users hold them: the package still takes its SD 2.1 settings."""
    from hub_fixtures import MIRROR_SD21, hub_cache, offline_cache, save_sd21

    offline_cache(monkeypatch, hub_cache(tmp_path / "hub", variant="fp16") if where == "mirror" else tmp_path / "hub")
    folder = save_sd21(tmp_path / "sd21") if where == "folder" else None
    with one_thread():
        finished = api.run(RunSpec("hidiffusion", "paper", size=(128, 192), prompt="a lighthouse", steps=2, limit=1,
                                   sd21=folder and str(folder), score=False, out=tmp_path / "run", progress=False))
    weights = finished.results["weights"]["stage1"]
    assert weights["repo"] == (MIRROR_SD21 if where == "mirror" else None)
    assert finished.results["method_settings"]["name_or_path"] == SD21_REPO and finished.results["samples"] == 1


def test_a_dispersed_kernel_calibrates_better_than_the_small_kernel_padded_or_dilated():
    """The structure-level calibration the transform is solved for, on random kernels and inputs."""
    from baselines.highres.dispersion import dispersed_weight

    kernel, x = torch.randn(4, 3, 3, 3, dtype=torch.float64), torch.randn(2, 3, 12, 12, dtype=torch.float64)
    up = lambda y: F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
    target = up(F.conv2d(x, kernel, padding=1))
    error = lambda y: (y - target).pow(2).mean()  # noqa: E731
    dispersed = error(F.conv2d(up(x), dispersed_weight(kernel), padding=2))
    assert dispersed < error(F.conv2d(up(x), F.pad(kernel, (1, 1, 1, 1)), padding=2)) / 10
    assert dispersed < error(F.conv2d(up(x), kernel, padding=2, dilation=2))


def test_dispersion_runs_where_the_2048_row_lists_it_and_only_in_the_variant():
    row = scalecrafter.nearest_row((2048, 2048))[0]
    listed = scalecrafter.module_dilations(meta_models()["unet"], row.disperse_blocks)
    assert len(listed) == 23  # the release's assets/disperse_settings/sd2.1_2048x2048.txt
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1))
    x = torch.randn(1, 4, 16, 16)
    with redilated(model, {"0": 4}):
        redilated_only = model(x)
    from baselines.highres.dispersion import dispersed_weight

    with redilated(model, {"0": 4}, dispersed={"0": dispersed_weight(model[0].weight)}):
        both = model(x)
    assert both.shape == redilated_only.shape and not torch.allclose(both, redilated_only)
    assert get_method("scalecrafter-disperse").load.__self__.disperse and not get_method("scalecrafter").plans == ()
    with one_thread():
        sampler = load_sampler("scalecrafter-disperse", Settings(steps=1, sr_steps=1))
        _, record = sampler("a lighthouse", (512, 512), SEEDS)
    assert record.stage1.details["scalecrafter"]["dispersed_convolutions"] == 0  # no list at the native size


def test_the_variant_disperses_the_listed_convolutions_while_redilating(monkeypatch):
    """The 2048² row's settings at a small size (the row chosen by hand): dispersion changes the image."""
    row = scalecrafter.nearest_row((2048, 2048))[0]
    monkeypatch.setattr(scalecrafter, "nearest_row", lambda size, model: (row, False))
    images = {}
    with one_thread():
        for name in ("scalecrafter", "scalecrafter-disperse"):
            sampler = load_sampler(name, Settings(steps=2, sr_steps=1))
            images[name], record = sampler("a lighthouse", (256, 256), SEEDS)
    assert record.stage1.details["scalecrafter"]["dispersed_convolutions"] == 23
    assert not torch.allclose(images["scalecrafter"], images["scalecrafter-disperse"], atol=1e-4)
