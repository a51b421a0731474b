"""Reading StableSR's released files: every key accounted for, both file formats, the round trip."""

import pytest
import torch

from baselines.stablesr.architecture import TINY, build_networks
from baselines.stablesr.convert import (CFW_FILE, STABLESR_FILE, CheckpointError, load_networks, read_state_dict,
                                        released_state_dicts)
from baselines.stablesr.loading import released_models, save_released

NAMES = {STABLESR_FILE: "stablesr.ckpt", CFW_FILE: "cfw.ckpt"}


def networks(seed: int):
    torch.manual_seed(seed)
    return build_networks(TINY)


@pytest.fixture(scope="module")
def released():
    return released_state_dicts(networks(1))


def test_released_layout_round_trips_into_other_networks(released):
    source, target = networks(1), networks(2)
    load_networks(target, released, NAMES)
    for name, module in source.modules().items():
        theirs = target.modules()[name].state_dict()
        assert all(torch.equal(tensor, theirs[key]) for key, tensor in module.state_dict().items()), name


def test_released_keys_are_the_original_layout(released):
    keys = set(released[STABLESR_FILE])
    assert "model.diffusion_model.input_blocks.1.0.spade.mlp_gamma.weight" in keys
    assert "model.diffusion_model.output_blocks.1.1.conv.weight" in keys  # an upsampler after a plain up block
    assert "model.diffusion_model.output_blocks.3.2.conv.weight" in keys  # and after an attended one
    assert "structcond_stage_model.input_blocks.3.1.qkv.weight" in keys  # legacy attention, fused qkv
    assert "structcond_stage_model.fea_tran.2.out_layers.3.weight" in keys
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in keys
    assert "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight" in keys
    assert "decoder.fusion_layer_2.encode_enc_2.0.rdb3.conv5.weight" in set(released[CFW_FILE])
    assert released[STABLESR_FILE]["structcond_stage_model.input_blocks.3.1.qkv.weight"].dim() == 3


def _editable(released: dict) -> dict:
    """A copy of the released files' state dicts whose keys a test may add or remove."""
    return {file: dict(state) for file, state in released.items()}


def test_a_missing_key_is_refused_by_name(released):
    broken = _editable(released)
    del broken[STABLESR_FILE]["model.diffusion_model.middle_block.0.spade.mlp_beta.bias"]
    with pytest.raises(CheckpointError, match=r"stablesr.ckpt: 1 weight\(s\) that no key fills.*"
                                              r"model\.diffusion_model\.middle_block\.0\.spade\.mlp_beta\.bias"):
        load_networks(networks(2), broken, NAMES)


def test_an_extra_key_is_refused_by_name(released):
    broken = _editable(released)
    broken[CFW_FILE]["decoder.fusion_layer_3.encode_enc_1.conv1.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"cfw.ckpt: 1 key\(s\) that map nowhere: "
                                              r"decoder\.fusion_layer_3\.encode_enc_1\.conv1\.weight"):
        load_networks(networks(2), broken, NAMES)


def test_the_training_loss_is_ignored_and_a_wrong_shape_or_schedule_refused(released):
    with_loss = _editable(released)
    with_loss[CFW_FILE]["loss.discriminator.main.0.weight"] = torch.zeros(3)
    load_networks(networks(2), with_loss, NAMES)
    wrong_shape = _editable(released)
    wrong_shape[CFW_FILE]["post_quant_conv.weight"] = torch.zeros(4, 4, 3, 3)
    with pytest.raises(CheckpointError, match=r"post_quant_conv\.weight.*\(4, 4, 3, 3\)"):
        load_networks(networks(2), wrong_shape, NAMES)
    v_model = _editable(released)
    v_model[STABLESR_FILE]["alphas_cumprod"] = v_model[STABLESR_FILE]["alphas_cumprod"] ** 1.1
    with pytest.raises(CheckpointError, match="alphas_cumprod is not SD 2.1's"):
        load_networks(networks(2), v_model, NAMES)


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_both_file_formats_load_and_are_recognised_as_tiny(tmp_path, suffix):
    source = networks(3)
    paths = save_released(source, tmp_path, {STABLESR_FILE: "stablesr_000117" + suffix,
                                             CFW_FILE: "vqgan_cfw_00011" + suffix})
    if suffix == ".ckpt":  # a Lightning checkpoint: the weights under "state_dict"
        assert set(torch.load(paths[STABLESR_FILE], weights_only=True)) == {"state_dict"}
    models = released_models(paths, torch.device("cpu"), torch.float32)
    assert "tiny configuration" in models.weights and str(paths[CFW_FILE]) in models.weights
    ours = models.networks.encoder.state_dict()
    assert all(torch.equal(t, ours[k]) for k, t in source.encoder.state_dict().items())
    assert models.networks.text.attn_mask.isinf().any()  # the causal mask rebuilt off the meta device


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {"a": 1}}, path)
    with pytest.raises(CheckpointError, match="no state dict of tensors"):
        read_state_dict(path)
    with pytest.raises(FileNotFoundError, match="no StableSR weight file"):
        read_state_dict(tmp_path / "missing.ckpt")
