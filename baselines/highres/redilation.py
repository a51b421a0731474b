"""Re-dilated convolution (ScaleCrafter): a 3×3 convolution run with its kernel spread out, same weights.

Plain torch. An integral dilation ``d`` is ``F.conv2d`` with dilation and padding ``d``; a
fractional one (2.5) rounds the dilation up to ``k = ceil(d)`` and resizes the input by
``k / d`` (bilinear) around the convolution, the output back to the size the plain
convolution gives, as ScaleCrafter does. :func:`redilated` swaps the forward of named
convolutions for the block and restores them after, so the model is never copied; those
named in ``dispersed`` run the 5×5 kernel given there (:mod:`baselines.highres.dispersion`)
at half the dilation, as ScaleCrafter does where both apply.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional

import torch
import torch.nn.functional as F


def redilated_conv(conv: torch.nn.Conv2d, x: torch.Tensor, dilation: float,
                   weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``conv`` applied to ``x`` with its kernel (or ``weight``, e.g. dispersed) re-dilated by ``dilation`` (≥ 1)."""
    weight = conv.weight if weight is None else weight
    if dilation < 1:
        raise ValueError(f"a re-dilation must be at least 1, got {dilation}")
    k = math.ceil(dilation)
    out_hw = (x.shape[-2] // conv.stride[0], x.shape[-1] // conv.stride[1])
    scale = k / dilation
    if scale != 1:
        x = F.interpolate(x, size=(round(x.shape[-2] * scale), round(x.shape[-1] * scale)), mode="bilinear")
    padding = tuple(k * (side // 2) for side in weight.shape[-2:])
    y = F.conv2d(x, weight, conv.bias, conv.stride, padding, k, conv.groups)
    return y if tuple(y.shape[-2:]) == out_hw else F.interpolate(y, size=out_hw, mode="bilinear")


@contextmanager
def redilated(model: torch.nn.Module, dilations: dict[str, float],
              dispersed: Optional[Mapping[str, torch.Tensor]] = None) -> Iterator[None]:
    """Within the block, each named convolution of ``model`` runs re-dilated (1: as it is); those also in
    ``dispersed`` (name -> dispersed weight) with that weight and half the dilation (at least 1)."""
    dispersed = {name: weight for name, weight in (dispersed or {}).items() if name in dilations}
    modules = dict(model.named_modules())
    missing = sorted(name for name in dilations if not isinstance(modules.get(name), torch.nn.Conv2d))
    if missing:
        raise ValueError(f"no convolution named {', '.join(missing)} in {type(model).__name__}: re-dilation settings "
                         "name the base model's modules")
    changed = [name for name, d in dilations.items() if d != 1 or name in dispersed]
    for name in changed:
        conv = modules[name]
        if name in dispersed:
            conv.forward = lambda x, conv=conv, d=max(dilations[name] / 2, 1), w=dispersed[name]: redilated_conv(
                conv, x, d, w)
        else:
            conv.forward = lambda x, conv=conv, d=dilations[name]: redilated_conv(conv, x, d)
    try:
        yield
    finally:
        for name in changed:
            vars(modules[name]).pop("forward", None)
