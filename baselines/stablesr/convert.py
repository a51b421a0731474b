"""The released StableSR checkpoints' key layout, to our modules and back, every key accounted for.

Two files (IceClear/StableSR's release):

- ``stablesr_000117.ckpt``: a Lightning checkpoint whose ``state_dict`` holds the UNet with its
  SPADE layers (``model.diffusion_model.*``, LDM's ``UNetModelDualcondV2``), the time-aware
  encoder (``structcond_stage_model.*``, ``EncoderUNetModelWT``), SD's VAE
  (``first_stage_model.*``), OpenCLIP's text tower (``cond_stage_model.model.*``) and the
  DDPM schedule buffers (``betas``, ``alphas_cumprod``, ...);
- ``vqgan_cfw_00011.ckpt``: the CFW autoencoder (``encoder.*``, ``decoder.*`` with
  ``decoder.fusion_layer_{1,2}.*``, ``quant_conv.*``, ``post_quant_conv.*``) and its training
  loss (``loss.*``, ignored).

Each of our weights is filled by exactly one rule from named released keys (renamed, a 1x1
convolution reshaped to a linear layer, LDM's fused legacy ``qkv`` split by head); a released
key no rule reads, or one of our weights no key fills, is an error naming them (never a
silent ``strict=False``). The same rules run backwards to write files in the released layout
(:func:`released_state_dicts`), which is how the tests build checkpoints with random weights.
The schedule buffers are checked against SD's schedule; ``cond_stage_model.model.logit_scale``
(CLIP's contrastive temperature) has no use here and is read and dropped by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from baselines.stablesr.architecture import StableSRNetworks
from baselines.stablesr.cfw import fusion_levels
from baselines.stablesr.schedule import STABLESR_SCHEDULER

Tensors = list[torch.Tensor]

STABLESR_FILE = "stablesr"  # stablesr_000117.ckpt
CFW_FILE = "cfw"  # vqgan_cfw_00011.ckpt
IGNORED_PREFIXES = {CFW_FILE: ("loss.",), STABLESR_FILE: ()}
DROPPED_KEYS = {STABLESR_FILE: ("cond_stage_model.model.logit_scale",), CFW_FILE: ()}
#: LDM's DDPM buffers: derived from the schedule, checked through ``alphas_cumprod``.
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2")


class CheckpointError(ValueError):
    """A released file that does not fit the modules; the message names the keys."""


@dataclass(frozen=True)
class Rule:
    """Our weights ``ours`` ((module, key), ...) from the released keys ``released`` of ``file``."""

    file: str
    released: tuple[str, ...]
    ours: tuple[tuple[str, str], ...]
    to_ours: Callable[[Tensors], Tensors] = lambda ts: ts
    to_released: Callable[[Tensors], Tensors] = lambda ts: ts


# --------------------------------------------------------------------------- reshapes


def _linear_from_conv(ndim: int):
    """A 1x1 convolution's weight (``ndim`` dims) as a linear layer's, and back; biases pass."""
    def to_ours(ts):
        return [t.reshape(t.shape[0], t.shape[1]) if t.dim() == ndim else t for t in ts]

    def to_released(ts):
        return [t.reshape(t.shape + (1,) * (ndim - 2)) if t.dim() == 2 else t for t in ts]

    return to_ours, to_released


def _split_qkv(heads: int):
    """LDM's legacy ``qkv`` (a 1x1 conv1d, q, k, v interleaved per head) as diffusers' to_q, to_k, to_v."""
    def to_ours(ts):
        (t,) = ts
        grouped = t.reshape(heads, 3, t.shape[0] // (3 * heads), *t.shape[1:2])  # weight (.., C) or bias
        return [grouped[:, i].reshape(-1, *t.shape[1:2]) for i in range(3)]

    def to_released(ts):
        stacked = torch.stack([t.reshape(heads, t.shape[0] // heads, *t.shape[1:]) for t in ts], dim=1)
        merged = stacked.reshape(-1, *ts[0].shape[1:])
        return [merged[..., None] if merged.dim() == 2 else merged]

    return to_ours, to_released


# --------------------------------------------------------------------------- key rules per network

_LDM_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}
_FUSE_RESNET = dict(_VAE_RESNET, conv_shortcut="conv_out")
_SPADE = {"norm": "param_free_norm", "shared.0": "mlp_shared.0", "gamma": "mlp_gamma", "beta": "mlp_beta"}


def _renamed(suffix: str, names: dict[str, str]) -> str:
    """``suffix`` (``conv1.weight``) with its module renamed by ``names``."""
    module, _, leaf = suffix.rpartition(".")
    if module not in names:
        raise KeyError(module)
    return f"{names[module]}.{leaf}"


def _one_to_one(file, module, ours_key, released_key, transform=None) -> Rule:
    if transform is None:
        return Rule(file, (released_key,), ((module, ours_key),))
    return Rule(file, (released_key,), ((module, ours_key),), *transform)


def _unet_paths(unet) -> dict[str, str]:
    """diffusers module path -> LDM module path (``input_blocks.N.k`` ...) of the UNet's blocks."""
    per_level = unet.config.layers_per_block + 1
    paths = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
             "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2",
             "mid_block.resnets.0": "middle_block.0", "mid_block.attentions.0": "middle_block.1",
             "mid_block.resnets.1": "middle_block.2"}
    for i, block in enumerate(unet.down_blocks):
        for j in range(len(block.resnets)):
            paths[f"down_blocks.{i}.resnets.{j}"] = f"input_blocks.{1 + i * per_level + j}.0"
            paths[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{1 + i * per_level + j}.1"
        paths[f"down_blocks.{i}.downsamplers.0.conv"] = f"input_blocks.{(i + 1) * per_level}.0.op"
    for u, block in enumerate(unet.up_blocks):
        attended = bool(getattr(block, "attentions", None))
        for j in range(len(block.resnets)):
            paths[f"up_blocks.{u}.resnets.{j}"] = f"output_blocks.{u * per_level + j}.0"
            paths[f"up_blocks.{u}.attentions.{j}"] = f"output_blocks.{u * per_level + j}.1"
        paths[f"up_blocks.{u}.upsamplers.0.conv"] = f"output_blocks.{u * per_level + per_level - 1}.{2 if attended else 1}.conv"
    return paths


def _module_of(key: str, paths: dict[str, str]) -> tuple[str, str]:
    """The longest module path of ``paths`` that ``key`` lies in, and the rest of the key."""
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in paths:
            return prefix, ".".join(parts[cut:])
    raise KeyError(key)


def unet_rules(nets: StableSRNetworks, prefix: str = "model.diffusion_model.") -> list[Rule]:
    paths = _unet_paths(nets.unet)
    rules = []
    for key in nets.unet.state_dict():
        module, suffix = _module_of(key, paths)
        released = paths[module] + "." + (_renamed(suffix, _LDM_RESNET) if ".resnets." in module else suffix)
        rules.append(_one_to_one(STABLESR_FILE, "unet", key, prefix + released))
    for k, path in enumerate(nets.spade.paths):
        for key in nets.spade.layers[k].state_dict():
            released = f"{prefix}{paths[path]}.spade.{_renamed(key, _SPADE)}"
            rules.append(_one_to_one(STABLESR_FILE, "spade", f"layers.{k}.{key}", released))
    return rules


def encoder_rules(nets: StableSRNetworks, prefix: str = "structcond_stage_model.") -> list[Rule]:
    encoder = nets.encoder
    per_level = len(encoder.down_blocks[0].resnets) + 1
    rules = []
    resnets = {"mid_block.resnets.0": "middle_block.0", "mid_block.resnets.1": "middle_block.2"}
    attentions = {"mid_block.attentions.0": "middle_block.1"}
    for i, block in enumerate(encoder.down_blocks):
        for j in range(len(block.resnets)):
            resnets[f"down_blocks.{i}.resnets.{j}"] = f"input_blocks.{1 + i * per_level + j}.0"
            attentions[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{1 + i * per_level + j}.1"
        if block.downsamplers is not None:
            rules += [_one_to_one(STABLESR_FILE, "encoder", f"down_blocks.{i}.downsamplers.0.conv.{leaf}",
                                  f"{prefix}input_blocks.{(i + 1) * per_level}.0.op.{leaf}") for leaf in ("weight", "bias")]
    for k in range(len(encoder.feature_blocks)):
        resnets[f"feature_blocks.{k}"] = f"fea_tran.{k}"
    for ours, released in {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
                           "time_embedding.linear_2": "time_embed.2"}.items():
        rules += [_one_to_one(STABLESR_FILE, "encoder", f"{ours}.{leaf}", f"{prefix}{released}.{leaf}")
                  for leaf in ("weight", "bias")]
    state = encoder.state_dict()
    for ours, released in resnets.items():
        rules += [_one_to_one(STABLESR_FILE, "encoder", key, f"{prefix}{released}.{_renamed(key[len(ours) + 1:], _LDM_RESNET)}")
                  for key in state if key.startswith(ours + ".")]
    for ours, released in attentions.items():
        if f"{ours}.to_q.weight" not in state:
            continue
        heads = encoder.get_submodule(ours).heads
        for leaf in ("weight", "bias"):
            rules.append(Rule(STABLESR_FILE, (f"{prefix}{released}.qkv.{leaf}",),
                              tuple(("encoder", f"{ours}.{name}.{leaf}") for name in ("to_q", "to_k", "to_v")),
                              *_split_qkv(heads)))
            rules.append(_one_to_one(STABLESR_FILE, "encoder", f"{ours}.to_out.0.{leaf}",
                                     f"{prefix}{released}.proj_out.{leaf}", _linear_from_conv(3)))
            rules.append(_one_to_one(STABLESR_FILE, "encoder", f"{ours}.group_norm.{leaf}",
                                     f"{prefix}{released}.norm.{leaf}"))
    return rules


def vae_rules(vae, module: str, file: str, prefix: str = "") -> list[Rule]:
    """diffusers' ``AutoencoderKL`` against LDM's ``AutoencoderKL`` keys (``module.vae.`` is ``module``'s own prefix)."""
    levels = len(vae.config.block_out_channels)
    ours_prefix = "vae." if module == "cfw" else ""
    paths = {"encoder.conv_in": "encoder.conv_in", "encoder.conv_norm_out": "encoder.norm_out",
             "encoder.conv_out": "encoder.conv_out", "decoder.conv_in": "decoder.conv_in",
             "decoder.conv_norm_out": "decoder.norm_out", "decoder.conv_out": "decoder.conv_out",
             "quant_conv": "quant_conv", "post_quant_conv": "post_quant_conv"}
    for side in ("encoder", "decoder"):
        paths[f"{side}.mid_block.resnets.0"] = f"{side}.mid.block_1"
        paths[f"{side}.mid_block.resnets.1"] = f"{side}.mid.block_2"
        paths[f"{side}.mid_block.attentions.0"] = f"{side}.mid.attn_1"
    for i, block in enumerate(vae.encoder.down_blocks):
        for j in range(len(block.resnets)):
            paths[f"encoder.down_blocks.{i}.resnets.{j}"] = f"encoder.down.{i}.block.{j}"
        paths[f"encoder.down_blocks.{i}.downsamplers.0.conv"] = f"encoder.down.{i}.downsample.conv"
    for u, block in enumerate(vae.decoder.up_blocks):
        for j in range(len(block.resnets)):
            paths[f"decoder.up_blocks.{u}.resnets.{j}"] = f"decoder.up.{levels - 1 - u}.block.{j}"
        paths[f"decoder.up_blocks.{u}.upsamplers.0.conv"] = f"decoder.up.{levels - 1 - u}.upsample.conv"
    attention_names = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    rules = []
    for key in vae.state_dict():
        path, suffix = _module_of(key, paths)
        if ".resnets." in path:
            rules.append(_one_to_one(file, module, ours_prefix + key,
                                     f"{prefix}{paths[path]}.{_renamed(suffix, _VAE_RESNET)}"))
        elif ".attentions." in path:
            rules.append(_one_to_one(file, module, ours_prefix + key,
                                     f"{prefix}{paths[path]}.{_renamed(suffix, attention_names)}", _linear_from_conv(4)))
        else:
            rules.append(_one_to_one(file, module, ours_prefix + key, f"{prefix}{paths[path]}.{suffix}"))
    return rules


def fusion_rules(nets: StableSRNetworks) -> list[Rule]:
    rules = []
    for level in fusion_levels(nets.cfw.vae):
        layer = nets.cfw.fusion[str(level)]
        released = f"decoder.fusion_layer_{level}"
        for key in layer.state_dict():
            ours = f"fusion.{level}.{key}"
            if key.startswith("fuse_in.") or key.startswith("fuse_out."):
                block, _, suffix = key.partition(".")
                name = "encode_enc_1" if block == "fuse_in" else "encode_enc_3"
                rules.append(_one_to_one(CFW_FILE, "cfw", ours, f"{released}.{name}.{_renamed(suffix, _FUSE_RESNET)}"))
            else:
                rrdb, dense, conv, leaf = re.fullmatch(r"rrdbs\.(\d+)\.blocks\.(\d+)\.convs\.(\d+)\.(\w+)", key).groups()
                rules.append(_one_to_one(CFW_FILE, "cfw", ours,
                                         f"{released}.encode_enc_2.{rrdb}.rdb{int(dense) + 1}.conv{int(conv) + 1}.{leaf}"))
    return rules


def text_rules(nets: StableSRNetworks, prefix: str = "cond_stage_model.model.") -> list[Rule]:
    return [_one_to_one(STABLESR_FILE, "text", key, prefix + key) for key in nets.text.state_dict()]


def rules(nets: StableSRNetworks) -> list[Rule]:
    """Every rule of both files."""
    return (unet_rules(nets) + encoder_rules(nets) + vae_rules(nets.first_stage, "first_stage", STABLESR_FILE,
                                                               "first_stage_model.")
            + text_rules(nets) + vae_rules(nets.cfw.vae, "cfw", CFW_FILE) + fusion_rules(nets))


# --------------------------------------------------------------------------- reading files


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file, or a ``.ckpt``/``.pt`` read with ``torch.load(weights_only=True)``
    (a Lightning checkpoint's ``state_dict``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no StableSR weight file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - the unpickler's errors have no common base
        raise CheckpointError(f"cannot read {path} with torch.load(weights_only=True) ({error}); "
                              "save its state_dict as .safetensors and pass that") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (nor a Lightning 'state_dict')")
    return state


def _check_schedule(state: dict[str, torch.Tensor], path: str):
    if "alphas_cumprod" not in state:
        return
    from diffusers import DDPMScheduler

    expected = DDPMScheduler(**STABLESR_SCHEDULER).alphas_cumprod
    found = state["alphas_cumprod"].double()
    if found.shape != expected.shape or not torch.allclose(found, expected.double(), atol=1e-5):
        raise CheckpointError(f"{path}: alphas_cumprod is not SD 2.1's scaled-linear schedule "
                              f"({STABLESR_SCHEDULER['beta_start']}-{STABLESR_SCHEDULER['beta_end']}, 1000 steps); "
                              "is this the 512 eps-prediction StableSR checkpoint?")


def _listing(keys, limit: int = 12) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def convert(nets: StableSRNetworks, released: dict[str, dict[str, torch.Tensor]],
            names: dict[str, str]) -> dict[str, dict[str, torch.Tensor]]:
    """Our state dict of each module from the released state dicts (``{file: state}``), every key accounted for.

    ``names`` says each file's path for the messages. Raises :class:`CheckpointError` naming the
    released keys that map nowhere and the weights that no key fills."""
    all_rules = rules(nets)
    problems = []
    for file, state in released.items():
        read = {key for rule in all_rules if rule.file == file for key in rule.released}
        known = read | set(DROPPED_KEYS[file]) | (set(SCHEDULE_BUFFERS) if file == STABLESR_FILE else set())
        unmapped = [k for k in state if k not in known and not k.startswith(IGNORED_PREFIXES[file])]
        if unmapped:
            problems.append(f"{names[file]}: {len(unmapped)} key(s) that map nowhere: {_listing(unmapped)}")
        absent = [k for k in read if k not in state]
        if absent:
            problems.append(f"{names[file]}: {len(absent)} weight(s) that no key fills (looked for): {_listing(absent)}")
        if file == STABLESR_FILE:
            _check_schedule(state, names[file])
    if problems:
        raise CheckpointError("the StableSR weights do not fit its architecture:\n  - " + "\n  - ".join(problems))
    ours: dict[str, dict[str, torch.Tensor]] = {name: {} for name in nets.modules()}
    for rule in all_rules:
        for (module, key), tensor in zip(rule.ours, rule.to_ours([released[rule.file][k] for k in rule.released])):
            ours[module][key] = tensor
    return ours


def load_networks(nets: StableSRNetworks, released: dict[str, dict[str, torch.Tensor]], names: dict[str, str],
                  assign: bool = False):
    """Fill ``nets`` from the released state dicts (``assign``: take the tensors, for networks built on ``meta``)."""
    converted = convert(nets, released, names)
    for name, module in nets.modules().items():
        expected = set(module.state_dict())
        if set(converted[name]) != expected:  # the rules cover every weight; this guards the rules themselves
            missing = expected - set(converted[name])
            raise CheckpointError(f"no rule fills {name} weight(s): {_listing(missing)}")
        for key, tensor in converted[name].items():
            shape = module.state_dict()[key].shape
            if tensor.shape != shape:
                raise CheckpointError(f"{name}.{key}: the checkpoint's tensor has shape {tuple(tensor.shape)}, "
                                      f"the architecture {tuple(shape)}")
        module.load_state_dict(converted[name], strict=True, assign=assign)
    if assign:  # open_clip's causal mask is a non-persistent buffer: rebuild it off the meta device
        nets.text.attn_mask = nets.text.build_causal_mask()


def released_state_dicts(nets: StableSRNetworks) -> dict[str, dict[str, torch.Tensor]]:
    """Our weights in the released layout (``{"stablesr": ..., "cfw": ...}``), SD's schedule buffers included."""
    from diffusers import DDPMScheduler

    states = {name: module.state_dict() for name, module in nets.modules().items()}
    released: dict[str, dict[str, torch.Tensor]] = {STABLESR_FILE: {}, CFW_FILE: {}}
    for rule in rules(nets):
        tensors = rule.to_released([states[module][key] for module, key in rule.ours])
        for key, tensor in zip(rule.released, tensors):
            released[rule.file][key] = tensor.contiguous()
    scheduler = DDPMScheduler(**STABLESR_SCHEDULER)
    released[STABLESR_FILE]["betas"] = scheduler.betas.clone()
    released[STABLESR_FILE]["alphas_cumprod"] = scheduler.alphas_cumprod.clone()
    released[STABLESR_FILE]["cond_stage_model.model.logit_scale"] = torch.tensor(4.6052)
    return released
