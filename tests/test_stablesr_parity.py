"""StableSR on diffusers' modules against the original code's outputs (tests/fixtures/stablesr).

The fixture was made by running IceClear/StableSR's own modules on the PARITY configuration
(see tests/fixtures/README); here the same released-layout weights go through our converter
into our modules, which must reproduce the original's UNet output (with the time-aware
encoder's structure features), the encoder's features and the CFW decode within 1e-4.
"""

import json
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler
from safetensors.torch import load_file

from helpers import fixture_weight

from baselines.stablesr.architecture import PAPER_ARCH, PARITY, build_networks, parameter_counts
from baselines.stablesr.convert import convert, rules
from baselines.stablesr.schedule import STABLESR_SCHEDULER, RespacedDDPMScheduler, space_timesteps

FIXTURE = Path(__file__).parent / "fixtures" / "stablesr"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def fixture():
    record = json.loads((FIXTURE / "parity.json").read_text())
    return record, load_file(FIXTURE / "parity.safetensors")


def released_fixture_weights(record: dict) -> dict[str, dict[str, torch.Tensor]]:
    states = {}
    for file, shapes in record["keys"].items():
        keys = sorted(shapes)
        states[file] = {key: fixture_weight(i, key, shapes[key]) for i, key in enumerate(keys)}
    return states


@pytest.fixture(scope="module")
def networks(fixture):
    """PARITY networks filled through the converter from the fixture's released-layout weights.

    The fixture covers the UNet, the encoder and the CFW autoencoder; the text tower and the
    first-stage VAE of the StableSR file (open_clip's class and the CFW VAE's rules) take our
    own initial weights, written into the released layout by the same rules."""
    record, _ = fixture
    torch.manual_seed(0)
    nets = build_networks(PARITY)
    released = released_fixture_weights(record)
    own = {name: module.state_dict() for name, module in nets.modules().items()}
    for rule in rules(nets):
        if rule.ours[0][0] in ("text", "first_stage"):
            for key, tensor in zip(rule.released, rule.to_released([own[m][k] for m, k in rule.ours])):
                released[rule.file][key] = tensor
    converted = convert(nets, released, {"stablesr": "fixture stablesr", "cfw": "fixture cfw"})
    for name, module in nets.modules().items():
        module.load_state_dict(converted[name], strict=True)
        module.eval()
    return nets


def assert_close(ours: torch.Tensor, theirs: torch.Tensor):
    assert ours.shape == theirs.shape
    error = (ours - theirs).abs().max().item()
    assert error <= TOLERANCE, f"max |ours - original| = {error:.3g} > {TOLERANCE}"


@torch.no_grad()
def test_time_aware_encoder_features_equal_the_original(fixture, networks):
    _, tensors = fixture
    features = networks.encoder(tensors["encoder.lr"], tensors["unet.t"])
    assert len(features) == 3
    for level, feature in enumerate(features):
        assert_close(feature, tensors[f"encoder.feature.{level}"])


@torch.no_grad()
def test_spade_unet_output_equals_the_original(fixture, networks):
    _, tensors = fixture
    features = networks.encoder(tensors["encoder.lr"], tensors["unet.t"])
    with networks.spade.structure(features):
        out = networks.unet(tensors["unet.x"], tensors["unet.t"], encoder_hidden_states=tensors["unet.context"]).sample
    assert_close(out, tensors["unet.out"])
    # the structure features matter: other features give another output
    with networks.spade.structure([f.flip(-1) for f in features]):
        other = networks.unet(tensors["unet.x"], tensors["unet.t"], encoder_hidden_states=tensors["unet.context"]).sample
    assert (other - tensors["unet.out"]).abs().max() > 100 * TOLERANCE


def test_the_unet_refuses_to_run_without_structure_features(fixture, networks):
    _, tensors = fixture
    with pytest.raises(RuntimeError, match="structure features"):
        networks.unet(tensors["unet.x"], tensors["unet.t"], encoder_hidden_states=tensors["unet.context"])


@torch.no_grad()
def test_cfw_encoder_and_fused_decoder_equal_the_original(fixture, networks):
    _, tensors = fixture
    vae = networks.cfw.vae
    assert_close(vae.quant_conv(vae.encoder(tensors["cfw.image"])), tensors["cfw.moments"])
    features = networks.cfw.encode_features(tensors["cfw.image"])
    for weight, name in ((0.5, "cfw.decoded_w0.5"), (0.0, "cfw.decoded_w0")):
        assert_close(networks.cfw.decode(tensors["cfw.z"], features, weight), tensors[name])
    assert (tensors["cfw.decoded_w0.5"] - tensors["cfw.decoded_w0"]).abs().max() > 100 * TOLERANCE


def test_respaced_timesteps_equal_ldm_space_timesteps(fixture):
    record, tensors = fixture
    scheduler = RespacedDDPMScheduler(**STABLESR_SCHEDULER)
    for steps, expected in record["space_timesteps"].items():
        assert space_timesteps(1000, int(steps)) == expected
        scheduler.set_timesteps(int(steps))
        assert scheduler.timesteps.tolist() == expected[::-1]
    # the original schedule is SD's scaled-linear one
    assert torch.allclose(DDPMScheduler(**STABLESR_SCHEDULER).alphas_cumprod.double(),
                          tensors["schedule.alphas_cumprod"], atol=1e-6)


def test_paper_arch_parameter_counts_equal_the_original_modules(fixture):
    record, _ = fixture
    ours = parameter_counts(PAPER_ARCH)
    assert {key: ours[key] for key in record["paper_arch_parameters"]} == record["paper_arch_parameters"]
    assert ours["unet"] - ours["unet_spade"] == 865_910_724  # SD 2.1-base's UNet, untouched
