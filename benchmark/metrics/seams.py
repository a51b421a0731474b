"""Seam score: how much stronger the jumps across tile borders are than jumps elsewhere.

For an image or latent and the non-overlap tile grid that would have cut it, the score is
the mean squared difference between neighbouring pixels across a tile border, divided by
the same mean at every other position. A stationary image scores 1.0 whatever its
content; a seam makes the border differences stand out and the score rise above 1.
"""

from __future__ import annotations

from typing import Optional

import torch

from baselines.tiling import axis_origins


def tile_borders(size: int, tile: int) -> list[int]:
    """Positions p (0 < p < size) where a non-overlap tile starts or ends: the border lies
    between pixels p - 1 and p. The clamped last tile contributes both its start and the
    end of its neighbour."""
    borders = set()
    for origin in axis_origins(size, tile, tile):
        borders.update(p for p in (origin, origin + tile) if 0 < p < size)
    return sorted(borders)


def squared_jumps(image: torch.Tensor, axis: int) -> torch.Tensor:
    """Squared differences between neighbours along ``axis`` of ``image`` (..., H, W), averaged
    over the leading dimensions (channels): (H - 1, W) for axis -2, (H, W - 1) for axis -1.
    Entry p - 1 is the jump between pixels p - 1 and p, where a border at p lies."""
    jumps = image.double().diff(dim=axis).pow(2)
    return jumps.reshape(-1, *jumps.shape[-2:]).mean(dim=0)


def seam_score(image: torch.Tensor, tile: int, grid_size: Optional[tuple[int, int]] = None,
               top_left: tuple[int, int] = (0, 0)) -> float:
    """Seam score of ``image`` (..., H, W) against a non-overlap grid of ``tile`` pixels.

    The grid is laid on ``image`` itself, or on a ``grid_size`` image of which ``image`` is
    the cut at ``top_left`` (a method's output centre-cropped from its working size).
    """
    image = image.double()
    border_energy, border_count, other_energy, other_count = 0.0, 0, 0.0, 0
    for axis, start in zip((-2, -1), top_left):
        size = image.shape[axis]
        laid_on = grid_size[axis] if grid_size else size
        jumps = squared_jumps(image, axis).mean(dim=1 if axis == -2 else 0)
        at_border = torch.zeros(size - 1, dtype=torch.bool)
        at_border[[p - start - 1 for p in tile_borders(laid_on, tile) if 0 < p - start < size]] = True
        border_energy += float(jumps[at_border].sum())
        border_count += int(at_border.sum())
        other_energy += float(jumps[~at_border].sum())
        other_count += int((~at_border).sum())
    if border_count == 0:
        return 1.0
    return (border_energy / border_count) / (other_energy / other_count)
