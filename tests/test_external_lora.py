"""LoRAs from other tools (diffusers' training scripts, peft, kohya): loaded as diffusers loads them,
recorded as external, left out of Table 3's buckets, refused by name when made for another base."""

import hashlib

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from hub_fixtures import lora_unet, save_external_lora

from helpers import CPU

from baselines.lora import EXTERNAL, BaseMismatchError, load_external_lora
from baselines.models import load_text_to_image
from baselines.base_models.sd21 import TINY_UNET
from benchmark import api
from benchmark.reporting.model_tables import paper_arad, trained_ratios
from benchmark.spec import RunSpec

pytestmark = pytest.mark.usefixtures("single_thread")


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, 16, 24, generator=g), torch.tensor([10, 700]), torch.randn(2, 77, 32, generator=g)


def _unet_out(unet):
    with torch.no_grad():
        return unet(*_inputs()).sample


def _diffusers_pipeline(path):
    """diffusers' own pipeline on fresh tiny models with the LoRA loaded by ``load_lora_weights``."""
    models = load_text_to_image("tiny", CPU)
    pipe = StableDiffusionPipeline(vae=models.vae, text_encoder=models.text_encoder, tokenizer=None, unet=models.unet,
                                   scheduler=DDIMScheduler(clip_sample=False, steps_offset=1), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(path))
    return pipe


@pytest.mark.parametrize("key_format", ["diffusers", "peft", "kohya"])
def test_the_unet_equals_diffusers_pipeline_with_the_lora_loaded(key_format, tmp_path):
    folder = save_external_lora(tmp_path / key_format, lora_unet(load_text_to_image("tiny", CPU).unet), key_format)
    ours = load_text_to_image("tiny", CPU)
    record = load_external_lora(ours.unet, folder, text_encoder=ours.text_encoder, base_name="tiny")
    given = folder if key_format != "kohya" else folder / "my_lora.safetensors"
    theirs = _diffusers_pipeline(given)
    torch.testing.assert_close(_unet_out(ours.unet), _unet_out(theirs.unet), rtol=0, atol=1e-5)
    assert (_unet_out(ours.unet) - _unet_out(load_text_to_image("tiny", CPU).unet)).abs().max() > 1e-3
    assert record["kind"] == EXTERNAL and record["rank"] == 4 and "trained_buckets" not in record
    assert record["key_format"].startswith(key_format)
    assert record["target_modules"] == ["to_k", "to_out.0", "to_q", "to_v"]


def test_ar_plus_runs_with_a_save_lora_weights_folder_and_records_it_as_external(tmp_path):
    folder = save_external_lora(tmp_path / "lora", lora_unet(load_text_to_image("tiny", CPU).unet))
    finished = api.run(RunSpec("ar-plus", lora=str(folder), limit=1, score=False, runs=tmp_path / "runs",
                               progress=False))
    lora = finished.results["lora"]
    weights = folder / "pytorch_lora_weights.safetensors"
    assert lora["kind"] == EXTERNAL and lora["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert lora["rank"] == 4 and lora["key_format"].startswith("diffusers") and "trained_buckets" not in lora
    # Table 3 groups by trained buckets: an external LoRA has none, so it is in no "N ratios" row
    assert trained_ratios(finished.results) is None and paper_arad([finished.results]) == [finished.results]


def test_a_lora_for_another_base_model_is_refused_naming_keys_and_shapes(tmp_path):
    from diffusers import UNet2DConditionModel

    other = UNet2DConditionModel(**dict(TINY_UNET, cross_attention_dim=48))  # another text encoder's width
    folder = save_external_lora(tmp_path / "other", lora_unet(other))
    ours = load_text_to_image("tiny", CPU)
    with pytest.raises(BaseMismatchError) as refused:
        load_external_lora(ours.unet, folder, text_encoder=ours.text_encoder, base_name="tiny/sd21")
    message = str(refused.value)
    assert "does not fit base tiny/sd21" in message and "attn2.to_k.lora_A.weight (4, 48)" in message
    base_shapes = {str(tuple(module.weight.shape)) for name, module in ours.unet.named_modules()
                   if name.endswith("attn2.to_k")}
    assert any(shape in message for shape in base_shapes)  # the base's to_k weight it does not fit
    assert not getattr(ours.unet, "peft_config", None)  # refused before the UNet is touched
