"""FLUX.1 as registered base models: published sizes, ``sr-plus`` against diffusers' ``FluxPipeline`` on the
same tiny modules, FSTD in stage I (an exact cover of the tokens, global positions, equal to ``sr-plus`` at one
tile), MultiDiffusion of the velocity, and the published folder's layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

from helpers import CPU, load_sampler, one_thread

from baselines.base_models.flux import t5_ids
from baselines.flow_matching import cell_coordinates, pack, unpack, velocity
from baselines.models import WeightPaths, load_text_to_image, meta_models, parameter_count
from baselines.stage1 import UNTILED, generate, multidiffusion_tiling, sampling_of
from baselines.settings import Seeds, Settings
from baselines.tiling import plan_step, step_offset
from benchmark.errors import UsageError
from benchmark.spec import RunSpec

PROMPT = "a lighthouse"
FSTD = Settings(4, 8).stage1_tiling("fstd", 64)  # what fstd-t2i runs: native 64-token tiles


@pytest.fixture(scope="module")
def dev():
    return load_text_to_image("tiny", CPU, torch.float32, model="flux")


@pytest.fixture(scope="module")
def schnell():
    return load_text_to_image("tiny", CPU, torch.float32, model="flux-schnell")


def pipeline_latent(models, size, steps, guidance, seed):
    """FluxPipeline's packed latent from our conditioning (no tokenizer files exist offline for it to use)."""
    positive = models.condition([PROMPT], size)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(models.scheduler_config),
                        vae=models.vae, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                        transformer=models.unet)
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt_embeds=positive.hidden, pooled_prompt_embeds=positive.added["pooled_projections"],
                height=size[0], width=size[1], num_inference_steps=steps, guidance_scale=guidance,
                generator=torch.Generator().manual_seed(seed), output_type="latent").images


def our_latent(models, size, steps, guidance, seed, tiling=UNTILED):
    """Our stage I's packed latent (FluxPipeline's token order), before the VAE."""
    negative, positive = models.guidance_pair(PROMPT, size)
    latent, tiled, record = sampling_of(models).denoise(
        models, negative, positive, (size[0] // 8, size[1] // 8), steps=steps, guidance=guidance, tiling=tiling,
        generator=torch.Generator().manual_seed(seed), global_positions=True,
        offsets=torch.Generator().manual_seed(seed + 1))
    return pack(latent).flatten(2).transpose(1, 2), tiled, record


def test_the_published_flux_sizes_on_meta():
    """FLUX.1 [dev]'s 11.9 B transformer (schnell's lacks the guidance embedding), T5 XXL's 4.76 B encoder."""
    dev, schnell = meta_models("paper-arch", "flux"), meta_models("paper-arch", "flux-schnell")
    assert parameter_count(dev["unet"]) == 11_901_408_320
    assert parameter_count(dev["unet"]) - parameter_count(schnell["unet"]) == 10_229_760  # guidance embedder
    assert parameter_count(dev["text_encoder_2"]) == 4_762_310_656
    assert parameter_count(dev["vae"]) == 83_819_683
    assert dev["unet"].config.joint_attention_dim == dev["text_encoder_2"].config.d_model
    assert dev["unet"].config.pooled_projection_dim == dev["text_encoder"].config.hidden_size


@pytest.mark.parametrize("model, guidance", [("dev", 3.5), ("schnell", 0.0)])
@one_thread()
def test_sr_plus_on_flux_equals_the_flux_pipeline(model, guidance, request):
    """The same noise, shifted sigmas, timesteps, guidance embedding and token order as FluxPipeline, to 1e-5."""
    models = request.getfixturevalue(model)
    size = (128, 192)
    ours, _, record = our_latent(models, size, 3, guidance, 5)
    reference = pipeline_latent(models, size, 3, guidance, 5)
    assert ours.shape == reference.shape == (1, 8 * 12, 64)
    assert (ours - reference).abs().max() < 1e-5
    assert record["shift"]["dynamic"] is (model == "dev")
    assert record["guidance"] == ("embedded 3.5" if model == "dev" else "none (no guidance embedding)")


def test_pack_is_fluxs_token_order(dev):
    latent = torch.randn(1, 16, 6, 10)
    expected = FluxPipeline._pack_latents(latent, 1, 16, 6, 10)
    assert torch.equal(pack(latent).flatten(2).transpose(1, 2), expected)
    assert torch.equal(unpack(pack(latent)), latent)


@pytest.mark.parametrize("size", [(40, 97), (64, 64), (130, 65), (20, 300)])
def test_the_shifted_partition_covers_every_token_exactly_once_per_step(size):
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for step in range(12):
        offset = step_offset(step, FSTD, generator)
        seen.add(offset)
        plan = plan_step(size, FSTD, offset)
        cover = torch.zeros(size, dtype=torch.int64)
        for (y, x), (h, w) in zip(plan.windows, plan.sizes):
            cover[y:y + h, x:x + w] += 1
        assert bool((cover == 1).all()), (size, offset)
    assert len(seen) > 2  # the grid does shift


@one_thread()
def test_fstd_in_stage_one_at_one_tile_equals_sr_plus(dev):
    size = (256, 1024)  # 16 x 64 tokens: one tile along each axis, whatever the offset
    plain, _, _ = our_latent(dev, size, 3, 3.5, 2)
    tiled, denoiser, record = our_latent(dev, size, 3, 3.5, 2, FSTD)
    assert torch.equal(plain, tiled) and denoiser.tile_evaluations == 3
    assert record["positions"] == "global" and len(record["offsets"]) == 3


def test_a_tile_sees_its_global_positions(dev):
    """At the origin a tile's global coordinates are its own; elsewhere they change what FLUX predicts."""
    positive = dev.condition([PROMPT], (256, 256))
    denoise = velocity(dev.unet, positive, 3.5)
    tile, t = torch.randn(1, 64, 4, 6), torch.tensor(500.0)
    own = denoise(tile, t, None)
    assert torch.equal(own, denoise(tile, t, cell_coordinates(4, 6)))
    moved = cell_coordinates(4, 6) + torch.tensor([10.0, 20.0])[None, :, None, None]
    assert (own - denoise(tile, t, moved)).abs().max() > 1e-4


@one_thread()
def test_multidiffusion_of_the_velocity_at_the_native_size_equals_sr_plus(dev):
    plain, _, _ = our_latent(dev, (256, 512), 2, 3.5, 4)
    views, tiled, _ = our_latent(dev, (256, 512), 2, 3.5, 4, multidiffusion_tiling(view=64))
    assert torch.allclose(plain, views, atol=1e-6) and tiled.tile_evaluations == 2


@one_thread()
def test_fstd_t2i_makes_any_size_and_records_model_shift_and_guidance(dev):
    pipeline = load_sampler("fstd-t2i", Settings(2, 2, guidance=3.5), model="flux")
    image, record = pipeline(PROMPT, (272, 1552), Seeds(1, 2, 3))
    assert tuple(image.shape[-2:]) == (272, 1552)
    details = record.stage1.details
    assert details["model"] == "FLUX.1 [dev]" and details["guidance"] == "embedded 3.5"
    assert details["shift"]["tokens"] == 17 * 64 and details["tiling"]["strategy"] == "partition"
    assert record.stage1.size == (272, 1552) and record.stage1.unet_calls > 2


def test_methods_that_patch_unets_refuse_flux_and_the_guidance_default_is_the_models():
    with pytest.raises(UsageError, match="hidiffusion runs on.*sd21.*sdxl"):
        RunSpec("hidiffusion", model="flux").resolved()
    assert RunSpec("sr-plus", model="flux").resolved().guidance == 3.5
    assert RunSpec("sr-plus", model="flux-schnell").resolved().guidance == 0.0
    assert RunSpec("sr-plus").resolved().guidance == 7.5
    assert RunSpec("sr-plus", model="flux", guidance=2.0).resolved().guidance == 2.0
    with pytest.raises(UsageError, match="not a stage II strategy"):
        RunSpec("fstd", tiling="partition", profile="tiny").resolved()


def _stand_in_t5_tokenizer(folder: Path):
    """A T5 tokenizer folder in the published layout (tokenizer.json, tokenizer_config.json), tiny vocabulary."""
    from tokenizers import Tokenizer, models, processors

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581a", -1.0), ("\u2581lighthouse", -1.0)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2))
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder.mkdir(parents=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "T5TokenizerFast", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
         "extra_ids": 0}))


@one_thread()
def test_paper_loads_a_flux_folder_in_the_published_layout_with_its_t5_tokenizer(dev, tmp_path):
    folder = tmp_path / "FLUX.1-dev"
    for sub, module in (("transformer", dev.unet), ("vae", dev.vae), ("text_encoder", dev.text_encoder),
                        ("text_encoder_2", dev.text_encoder_2)):
        module.save_pretrained(folder / sub)
    FlowMatchEulerDiscreteScheduler.from_config(dev.scheduler_config).save_pretrained(folder / "scheduler")
    paths = WeightPaths(models={"flux": str(folder)})
    (folder / "tokenizer_2").mkdir()
    with pytest.raises(Exception, match="tokenizer_2/tokenizer_config.json"):
        load_text_to_image("paper", CPU, torch.float32, paths, model="flux")
    (folder / "tokenizer_2").rmdir()
    _stand_in_t5_tokenizer(folder / "tokenizer_2")
    loaded = load_text_to_image("paper", CPU, torch.float32, paths, model="flux")
    ids = t5_ids(loaded, ["a lighthouse"], 8)
    assert ids[0].tolist() == [3, 4, 1, 0, 0, 0, 0, 0]  # the folder's vocabulary, end of sequence, padding
    assert type(loaded.unet).__name__ == "FluxTransformer2DModel" and loaded.describe()["weights"] == str(folder)
    image = generate(loaded, PROMPT, (128, 128), steps=1, guidance=3.5, generator=torch.Generator().manual_seed(0))
    assert image.image.shape == (1, 3, 128, 128)


def test_the_flux_table_runs_every_method_declared_for_flux_fstd_t2i_and_i_max_included():
    from benchmark.reporting.paper_runs import specs

    runs = specs(RunSpec("sr-plus", "tiny", dataset="synthetic"), model="flux")
    assert {r.method for r in runs} == {"sr-plus", "sr-tile", "sr-tile-plus", "asd", "md", "fstd-t2i", "i-max"}
    assert {r.model for r in runs} == {"flux"} and len({r.size for r in runs}) >= 2
