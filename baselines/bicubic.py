"""Bicubic resize read region by region, so that an upscaled image never has to exist whole.

Stage II starts from the source image resized bicubically to the target size, and reads it
twice: tile by tile for the encoder, and again as the colour fix's reference. At 8192² a
float copy of it is 805 MB, so :class:`Bicubic` keeps only the source and the two
one-axis weight matrices, and computes any region on demand. The weights are those of
``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` (obtained by resizing
the unit vectors), which is separable, so a region equals the same crop of the whole
resize up to the order of the float sums.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a (B, C, H, W) image in [-1, 1] (antialiased when shrinking), whole."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image.float(), size=size, mode="bicubic", align_corners=False,
                         antialias=True).clamp(-1, 1).to(image.dtype)


def axis_weights(size_in: int, size_out: int, device=None) -> torch.Tensor:
    """(size_out, size_in): row i holds the weights of output pixel i along one axis.

    Each unit vector is resized as a 2-px-wide image: torch's antialiased kernel treats a
    1-px-wide image differently (2.14), and a constant second axis is left as it is.
    """
    basis = torch.eye(size_in, device=device)[:, None, :, None].expand(-1, -1, -1, 2).contiguous()
    return F.interpolate(basis, size=(size_out, 2), mode="bicubic", align_corners=False,
                         antialias=True)[:, 0, :, 0].T.contiguous()


def support(weights: torch.Tensor) -> tuple[int, int]:
    """[first, last + 1) of the input pixels these output rows read."""
    used = torch.nonzero(weights.abs().sum(0)).flatten()
    return int(used[0]), int(used[-1]) + 1


class Bicubic:
    """``resize(image, size)`` computed for any region: ``Bicubic(image, size)(top, left, height, width)``."""

    def __init__(self, image: torch.Tensor, size: tuple[int, int]):
        self.image = image.float()
        self.size = tuple(size)
        self.dtype = image.dtype
        self.identity = tuple(image.shape[-2:]) == self.size
        if not self.identity:
            self.rows = axis_weights(image.shape[-2], size[0], image.device)
            self.cols = axis_weights(image.shape[-1], size[1], image.device)

    def __call__(self, top: int, left: int, height: int, width: int) -> torch.Tensor:
        if self.identity:
            return self.image[..., top:top + height, left:left + width].to(self.dtype)
        rows, cols = self.rows[top:top + height], self.cols[left:left + width]
        (r0, r1), (c0, c1) = support(rows), support(cols)
        source = self.image[..., r0:r1, c0:c1]
        region = rows[:, r0:r1] @ source @ cols[:, c0:c1].T
        return region.clamp(-1, 1).to(self.dtype)
