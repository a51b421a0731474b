"""StableSR's networks at the sizes of each profile, and the models they make up.

``paper-arch`` is the published architecture (``configs/stableSRNew/v2-finetune_text_T_512.yaml``
and ``configs/autoencoder/autoencoder_kl_64x64x4_resi.yaml`` of IceClear/StableSR): SD 2.1-base's
UNet and VAE exactly (diffusers' configs in :mod:`baselines.models`), the time-aware encoder
(256 channels, mult 1, 1, 2, 2, attention at levels 0-2), SPADE with 128 hidden channels, CFW
fusion with two RRDBs, OpenCLIP ViT-H/14's text tower. ``PARITY`` keeps every block type at the
smallest sizes the original code accepts (its GroupNorms have 32 groups, its SPADE 128 hidden
and its dense blocks 32 growth channels): the configuration of the parity fixture
(``tests/fixtures/stablesr``). ``tiny`` (the profile) shrinks those too, for seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from open_clip.transformer import TextTransformer

from baselines.base_models.sd21 import SD21_UNET, SD21_VAE
from baselines.stablesr.cfw import GROW_CHANNELS, CFWAutoencoder
from baselines.stablesr.encoder import TimeAwareEncoder
from baselines.stablesr.spade import SPADE_HIDDEN, SpadeModulation
from baselines.stablesr.text import penultimate_embedding, text_tower

SCALING_FACTOR = 0.18215  # SD's latent scale


@dataclass(frozen=True)
class Architecture:
    """The configuration of every StableSR network (diffusers' keys for the UNet and the VAE)."""

    unet: dict
    encoder: dict
    vae: dict
    text: dict
    rrdb_blocks: int = 2
    rrdb_grow: int = GROW_CHANNELS
    spade_hidden: int = SPADE_HIDDEN


PAPER_ARCH = Architecture(
    unet=SD21_UNET,
    encoder=dict(model_channels=256, out_channels=256, channel_mult=(1, 1, 2, 2), layers_per_block=2,
                 attention_levels=(0, 1, 2), heads=4),
    vae=SD21_VAE, text=dict(width=1024, heads=16, layers=24, output_dim=1024))

PARITY = Architecture(
    unet=dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64, 64),
              down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
              cross_attention_dim=32, attention_head_dim=(2, 4, 4), use_linear_projection=True),
    encoder=dict(model_channels=32, out_channels=32, channel_mult=(1, 2, 2), layers_per_block=1,
                 attention_levels=(0, 1), heads=4),
    vae=dict(SD21_VAE, block_out_channels=(32, 32, 32, 32), layers_per_block=1, sample_size=64),
    text=dict(width=32, heads=4, layers=2, output_dim=32), rrdb_blocks=1)

TINY = Architecture(
    unet=dict(PARITY.unet, block_out_channels=(16, 32, 32), norm_num_groups=8,  # attention off the 64² level
              down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")),
    encoder=dict(model_channels=16, out_channels=16, channel_mult=(1, 2, 2), layers_per_block=1,
                 attention_levels=(1,), heads=2, groups=8),
    vae=dict(PARITY.vae, block_out_channels=(8, 8, 16, 16), norm_num_groups=4),
    text=PARITY.text, rrdb_blocks=1, rrdb_grow=8, spade_hidden=16)

ARCHITECTURES = {"tiny": TINY, "paper-arch": PAPER_ARCH, "paper": PAPER_ARCH}


@dataclass
class StableSRNetworks:
    """Every network of StableSR; ``text`` only serves the empty-prompt embedding (and stays on the CPU)."""

    unet: UNet2DConditionModel
    spade: SpadeModulation
    encoder: TimeAwareEncoder
    first_stage: AutoencoderKL  # SD's VAE: encodes the upscaled image to the start latent
    cfw: CFWAutoencoder  # the CFW VAE: its encoder's features and its fused decoder
    text: TextTransformer

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet, "spade": self.spade, "encoder": self.encoder,
                "first_stage": self.first_stage, "cfw": self.cfw, "text": self.text}


def build_networks(arch: Architecture) -> StableSRNetworks:
    """Freshly initialised networks (on the current default device: use ``torch.device("meta")`` to count)."""
    unet = UNet2DConditionModel(**arch.unet)
    return StableSRNetworks(
        unet=unet, spade=SpadeModulation(unet, arch.encoder["out_channels"], arch.spade_hidden),
        encoder=TimeAwareEncoder(in_channels=arch.unet["in_channels"], **arch.encoder),
        first_stage=AutoencoderKL(**arch.vae),
        cfw=CFWAutoencoder(AutoencoderKL(**arch.vae), arch.rrdb_blocks, arch.rrdb_grow),
        text=text_tower(**arch.text))


def parameter_counts(arch: Architecture = PAPER_ARCH) -> dict[str, int]:
    """Parameters of the UNet with its SPADE layers, the time-aware encoder and the CFW autoencoder (meta device)."""
    with torch.device("meta"):
        nets = build_networks(arch)
    count = lambda *modules: sum(p.numel() for m in modules for p in m.parameters())
    return {"unet": count(nets.unet, nets.spade), "unet_spade": count(nets.spade), "encoder": count(nets.encoder),
            "cfw_autoencoder": count(nets.cfw), "cfw_fusion": count(nets.cfw.fusion)}


@dataclass
class StableSRModels:
    """StableSR on a device: its networks, the empty-prompt embedding and where the weights came from."""

    networks: StableSRNetworks
    prompt_embedding: torch.Tensor
    name: str
    weights: str
    files: dict = field(default_factory=dict)  # released file -> path, on paper

    @property
    def unet(self) -> UNet2DConditionModel:
        return self.networks.unet

    @property
    def vae(self) -> AutoencoderKL:
        """The VAE that decodes (the CFW one)."""
        return self.networks.cfw.vae


def ready(networks: StableSRNetworks, device: torch.device, dtype: torch.dtype, name: str, weights: str,
          files: Optional[dict] = None) -> StableSRModels:
    """Networks on the device in ``dtype`` for inference; the embedding is computed on the CPU in fp32."""
    networks.text.float().eval().requires_grad_(False)
    embedding = penultimate_embedding(networks.text, [""])
    for module in (networks.unet, networks.spade, networks.encoder, networks.first_stage, networks.cfw):
        module.to(device)
        if next(module.parameters()).dtype != dtype:  # cast only when it changes something
            module.to(dtype)
        module.eval().requires_grad_(False)
    return StableSRModels(networks, embedding.to(device, dtype), name, weights, files or {})
