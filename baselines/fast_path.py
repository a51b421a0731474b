"""The GPU fast path: how the networks run (dtype, attention kernel, memory format, torch.compile).

Each is one recorded setting (``results.json["fast_path"]``). A setting left unset takes its
device's default: on a CPU today's behaviour, so that outputs stay bit-identical (fp32,
diffusers' SDPA processor, contiguous tensors, no compile, one tile per UNet call); on CUDA
an estimate from FLOP and memory counts (:data:`CUDA_ESTIMATES`), until a GPU measures it
(``scripts/gpu-measure.sh``). The tile batch itself is a tiling field
(``TilingConfig.tile_batch_size``); only its device default lives here.

Applied after the models (and any LoRA) are loaded, so that ARAD training never sees them.
The x4 upscaler's VAE stays in fp32 whatever the dtype where its config says
``force_upcast`` (it overflows in fp16; :func:`baselines.models.load_upscaler`), and the
record says which dtype each VAE runs in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Optional

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
ATTENTIONS = ("sdpa", "classic")

#: Today's behaviour: the CPU default, outputs unchanged.
CPU_DEFAULTS = dict(dtype="fp32", attention="sdpa", channels_last=False, compile=False, tile_batch_size=1)
#: The CUDA defaults, each an estimate from counts (not yet measured on a GPU), and why.
CUDA_DEFAULTS = dict(dtype="fp16", attention="sdpa", channels_last=False, compile=False, tile_batch_size=8)
CUDA_ESTIMATES = {
    "dtype": "fp16, as the authors run: fp16 and bf16 share the dense tensor peak (H100/H200 SXM: "
             "989 TFLOP/s); fp32 matrix products run without tensor cores by default (67 TFLOP/s on H200), "
             "for the 1.13 TFLOP of one 128² x4 UNet tile (counted by torch's flop_counter)",
    "attention": "SDPA: the classic processor writes the scores, batch × heads × N² (SD 2.1 at 1024²: "
                 "N = 16,384, 2 × 5 × N² × 2 B = 5.4 GB a layer, 86 GB at 2048², over a 32 GiB card); "
                 "SDPA's fused kernels keep memory linear in N at the same FLOPs",
    "channels_last": "off: cuDNN's NCHW fp16 convolutions transpose in and out of NHWC, but in channels-last "
                     "every GroupNorm before a convolution pays about the same transposes: no gain expected",
    "compile": "off: one compilation per UNet and tile shape (tens of seconds each), against a gain "
               "bounded by the elementwise traffic it fuses (GroupNorm, SiLU, residual adds)",
    "tile_batch_size": "8: at the x4 UNet's 16² level (1,024 channels) one 128² tile is a 256 × 1,024 "
                       "GEMM, 16 blocks of 128 × 128, for the 132 SMs of an H200: 8 tiles fill them; a "
                       "tile holds about 40 MiB of fp16 skip connections (8 MiB per 256-channel 128² map)",
}


@dataclass(frozen=True)
class FastPath:
    """How the UNets (and the VAEs' attention) run; None means the device's default."""

    dtype: Optional[str] = None
    attention: Optional[str] = None
    channels_last: Optional[bool] = None
    compile: Optional[bool] = None

    def __post_init__(self):
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.attention is not None and self.attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {self.attention!r}; choose one of {', '.join(ATTENTIONS)}")

    @staticmethod
    def defaults(device: torch.device) -> dict:
        return CUDA_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS

    def resolve(self, device: torch.device, half: str = "fp16") -> "FastPath":
        """Every unset setting filled with ``device``'s default; a half-precision default is ``half``, the one the
        base model runs in (FLUX: bf16, whose activations overflow fp16)."""
        defaults = dict(self.defaults(device))
        defaults["dtype"] = half if defaults["dtype"] != "fp32" else "fp32"
        return replace(self, **{key: defaults[key] for key, value in asdict(self).items() if value is None})

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def apply(self, unets: list, vaes: list = (), compile_backend: str = "inductor"):
        """Set the attention processor of every model, the memory format and compilation of the UNets
        (``compile_backend``: torch.compile's; the tests take a light one)."""
        for model in [*unets, *vaes]:
            set_attention(model, self.attention)
        for unet in unets:
            if self.channels_last:
                unet.to(memory_format=torch.channels_last)
            if self.compile:
                unet.compile(dynamic=False, backend=compile_backend)  # one graph per shape; the warm-up makes them

    def as_record(self, device: torch.device, given: "FastPath") -> dict:
        """The settings in force, which of them were given, and where the others came from."""
        record = asdict(self)
        record["given"] = [key for key, value in asdict(given).items() if value is not None]
        record["defaults"] = ("cuda: estimates from FLOP and memory counts, not yet measured on a GPU"
                              if device.type == "cuda" else "cpu: the unchanged behaviour (outputs bit-identical)")
        return record


def default_tile_batch_size(device: torch.device) -> int:
    return FastPath.defaults(device)["tile_batch_size"]


def set_attention(model: torch.nn.Module, attention: str):
    """diffusers' SDPA processor (``AttnProcessor2_0``) or the classic one, on every attention of ``model``.

    Left alone when every processor already is the one asked for, so a default run is untouched, and where
    the model's attention is of another kind (FLUX's joint attention, whose own processor calls SDPA),
    which has no classic processor to switch to."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    wanted = AttnProcessor2_0 if attention == "sdpa" else AttnProcessor
    processors = getattr(model, "attn_processors", {})
    if not processors or all(type(p) is wanted for p in processors.values()):
        return
    if not all(type(p) in (AttnProcessor, AttnProcessor2_0) for p in processors.values()):
        if attention == "sdpa":
            return
        raise ValueError(f"attention 'classic' is diffusers' processor of UNet attention; {type(model).__name__}'s "
                         "attention has its own (SDPA) processor: drop --attention classic")
    model.set_attn_processor(wanted())
