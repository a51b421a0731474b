"""The ARAD LoRA folder: round trip into a fresh UNet, diffusers compatibility, refusals, tiny cache."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from arad_fixtures import scratch, tiny_models, tiny_unet, trained_run

from baselines.arad import tiny_arad_lora
from baselines.lora import (
    LORA_METADATA,
    LORA_WEIGHTS,
    BaseMismatchError,
    LoraError,
    NotALoraError,
    load_arad_lora,
    read_arad_lora,
)


pytestmark = pytest.mark.usefixtures("single_thread")


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(2, 4, 12, 16, generator=g)
    timesteps = torch.tensor([10, 700])
    hidden = torch.randn(2, 77, 16, generator=g)
    return latents, timesteps, hidden


def _out(unet):
    with torch.no_grad():
        return unet(*_inputs()).sample


def test_saved_lora_round_trips_into_a_fresh_unet():
    _, _, result, *_ = trained_run()
    trained = _out(result.unet.eval())
    fresh = tiny_unet(0).eval()
    before = _out(fresh)
    assert (before - trained).abs().max() > 1e-3  # the LoRA changes the output
    info = load_arad_lora(fresh, result.path, base_name="tiny-test")
    after = _out(fresh)
    torch.testing.assert_close(after, trained, rtol=0, atol=1e-6)
    assert info.rank == 4 and info.path == result.path
    assert info.buckets[0] == "32x32"
    with pytest.raises(LoraError, match="already has an adapter"):
        load_arad_lora(fresh, result.path)


def test_the_weights_file_is_diffusers_peft_layout_and_loads_with_load_lora_weights():
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from safetensors import safe_open

    models, _, result, *_ = trained_run()
    with safe_open(str(result.path / LORA_WEIGHTS), framework="pt") as f:
        keys = list(f.keys())
        header = json.loads(f.metadata()["lora_adapter_metadata"])
    assert keys and all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in keys)
    assert header["unet.r"] == 4 and header["unet.lora_alpha"] == 4
    pipe = StableDiffusionPipeline(
        vae=models.vae, text_encoder=models.text_encoder, tokenizer=None, unet=tiny_unet(0).eval(),
        scheduler=DDIMScheduler(clip_sample=False, steps_offset=1), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.load_lora_weights(str(result.path))
    torch.testing.assert_close(_out(pipe.unet), _out(result.unet.eval()), rtol=0, atol=1e-6)


def test_a_lora_for_another_architecture_is_refused():
    _, _, result, *_ = trained_run()
    other = tiny_unet(0, cross_attention_dim=32)
    with pytest.raises(BaseMismatchError) as err:
        load_arad_lora(other, result.path, base_name="other-model")
    message = str(err.value)
    assert f"LoRA at {result.path} was trained for base tiny-test (UNet fingerprint" in message
    assert "not other-model" in message and "cross_attention_dim: 16 vs 32" in message
    assert not getattr(other, "peft_config", None)  # refused before touching the UNet


def test_a_lora_for_other_weights_of_the_same_architecture_is_refused():
    _, _, result, *_ = trained_run()
    other = tiny_unet(seed=1)  # same config, another random initialisation
    with pytest.raises(BaseMismatchError, match="same architecture but other weights"):
        load_arad_lora(other, result.path)
    assert not getattr(other, "peft_config", None)
    # the same weights in half precision are still the same base model
    half = tiny_unet(0).to(torch.bfloat16)
    load_arad_lora(half, result.path)


def _corrupt(kind: str, source, tmp_path):
    target = tmp_path / kind
    if kind == "missing":
        return tmp_path / "no-such-folder"
    if kind == "a-file":
        target.write_text("hello")
        return target
    if kind == "empty-folder":
        target.mkdir()
        return target
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints"))
    if kind == "no-metadata":
        (target / LORA_METADATA).unlink()
    elif kind == "bad-json":
        (target / LORA_METADATA).write_text("{not json")
    elif kind == "foreign-json":
        (target / LORA_METADATA).write_text(json.dumps({"hello": 1}))
    elif kind == "not-safetensors":
        (target / LORA_WEIGHTS).write_bytes(b"\x00" * 64)
    elif kind == "full-weights":
        from safetensors.torch import save_file

        save_file({"conv_in.weight": torch.zeros(2, 2)}, str(target / LORA_WEIGHTS))
    return target


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "does not exist"),
        ("a-file", "it is a file"),
        ("empty-folder", f"{LORA_WEIGHTS} is missing"),
        ("no-metadata", f"{LORA_METADATA} is missing"),
        ("bad-json", "not valid json"),
        ("foreign-json", 'no "format"'),
        ("not-safetensors", "not a safetensors file"),
        ("full-weights", "keys without lora_A/lora_B"),
    ],
)
def test_what_is_not_a_lora_is_refused_with_what_was_expected(kind, reason, tmp_path):
    _, _, result, *_ = trained_run()
    path = _corrupt(kind, result.path, tmp_path)
    unet = tiny_unet(0)
    with pytest.raises(NotALoraError) as err:
        load_arad_lora(unet, path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a LoRA: expected a folder holding {LORA_WEIGHTS}")
    assert "lora_A/lora_B keys" in message and "metadata json" in message
    assert reason in message
    assert not getattr(unet, "peft_config", None)


def test_the_weights_file_path_is_accepted_too():
    _, _, result, *_ = trained_run()
    assert read_arad_lora(result.path / LORA_WEIGHTS).path == result.path


def test_tiny_lora_is_trained_once_cached_and_leaves_the_models_alone(tmp_path):
    models = tiny_models(0)
    base = {k: v.clone() for k, v in models.unet.state_dict().items()}
    path = tiny_arad_lora(models, tmp_path, steps=3, examples=6)
    assert path.parent == tmp_path and path.name.startswith("arad-lora-tiny-")
    info = read_arad_lora(path)
    assert info.metadata["training"]["steps_done"] == 3 and info.metadata["training"]["bucket_divisor"] == 16
    assert not getattr(models.unet, "peft_config", None)
    assert all(torch.equal(v, base[k]) for k, v in models.unet.state_dict().items())
    stamp = (path / LORA_WEIGHTS).stat().st_mtime_ns
    assert tiny_arad_lora(models, tmp_path, steps=3, examples=6) == path  # cached
    assert (path / LORA_WEIGHTS).stat().st_mtime_ns == stamp
    assert tiny_arad_lora(models, tmp_path, steps=4, examples=6) != path  # other settings, other key
    assert tiny_arad_lora(tiny_models(1), tmp_path, steps=3, examples=6) != path  # other base weights
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")] == []  # no leftovers but the lock
    fresh = tiny_unet(0)
    load_arad_lora(fresh, path)
    with pytest.raises(BaseMismatchError):
        load_arad_lora(tiny_unet(1), path)
    assert scratch().is_dir()
