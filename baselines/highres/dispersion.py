"""Dispersed convolution (ScaleCrafter): a 3×3 kernel spread into a 5×5 one by a fixed linear transform.

The transform ``R`` (25 × 9) is the least-squares solution, over every input of a 7×7 patch,
of two calibrations the ScaleCrafter paper states: the large kernel on a ×2 bilinear upsampled
input should give the ×2 upsampled output of the small kernel (structure), and on the input
itself the small kernel's output (pixel), weighted ``eta``. Both are linear in the kernels, so
``R`` is solved once from unit impulses, here in torch (the release solves it symbolically in
MATLAB and ships the matrix). Plain torch; it knows nothing of diffusers.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

SMALL, LARGE, PATCH, SCALE, ETA = 3, 5, 7, 2, 0.05  # the release's example sizes and weight


def _impulses(count: int, side: int) -> torch.Tensor:
    return torch.eye(count, dtype=torch.float64).view(count, 1, side, side)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=SCALE, mode="bilinear", align_corners=False)


@lru_cache(maxsize=1)
def dispersion_transform(eta: float = ETA) -> torch.Tensor:
    """``R`` with ``vec(large) = R @ vec(small)`` (row-major kernels), float64."""
    inputs = _impulses(PATCH * PATCH, PATCH)
    large, small = _impulses(LARGE * LARGE, LARGE), _impulses(SMALL * SMALL, SMALL)

    def responses(x: torch.Tensor, kernels: torch.Tensor, after=lambda y: y) -> torch.Tensor:
        """One column per kernel: every output pixel of every impulse input."""
        return torch.stack([after(F.conv2d(x, k[None], padding=k.shape[-1] // 2)).flatten() for k in kernels], 1)

    structure = responses(_up(inputs), large), responses(inputs, small, _up)
    pixel = responses(inputs, large), responses(inputs, small)
    a = torch.cat([structure[0], eta * pixel[0]])
    b = torch.cat([structure[1], eta * pixel[1]])
    return torch.linalg.lstsq(a, b).solution


def dispersed_weight(weight: torch.Tensor) -> torch.Tensor:
    """A (out, in, 3, 3) convolution weight dispersed to (out, in, 5, 5)."""
    if tuple(weight.shape[-2:]) != (SMALL, SMALL):
        raise ValueError(f"dispersion spreads 3x3 kernels, not {tuple(weight.shape[-2:])}")
    transform = dispersion_transform().to(weight.device, weight.dtype)
    spread = torch.einsum("ln,oin->oil", transform, weight.flatten(2))
    return spread.reshape(*weight.shape[:2], LARGE, LARGE)
