"""The tiling engine: one sampling step's noise prediction, stitched from latent tiles.

Plain torch; it knows nothing of diffusers. A denoiser is any callable
``f(latent_tile, t, cond_tile) -> noise_prediction`` on batches of tiles. Four strategies:

- ``none``: the whole latent in one call;
- ``nonoverlap``: a grid of ``tile``-sized tiles, the last one clamped to the far edge;
- ``explicit``: tiles overlapping by ``overlap``, so ``ceil((size - o) / (tile - o))`` per
  axis (the paper's Eq. 4), blended with weights every step;
- ``implicit`` (FSTD): the non-overlap grid shifted by one offset per step for all tiles,
  drawn uniformly in ``[0, offset_range)``, reset to (0, 0) every ``reset_every`` steps.
  The strip the shifted grid leaves uncovered (top/left, as wide as the offset) takes the
  previous step's stitched prediction (``fill="eps"``, the authors' released code) or keeps
  the previous latent (``fill="latent"``, the paper's text; the sampler applies that);
- ``partition``: FSTD's shifted grid as an exact cover: the same offsets, but the tiles the
  shift cuts at the edges are kept short instead of clamped or left out, so every latent cell
  lies in exactly one tile at every step. Tiles then differ in size, which a transformer on
  tokens takes (stage I on FLUX) and a UNet, whose sides must divide by its downsampling, does
  not: stage II offers the other four (:data:`STAGE2_STRATEGIES`).

A latent smaller than the tile along an axis is one tile along that axis, as large as the
latent. The non-overlap and implicit grids always hold ``ceil(size / tile)`` tiles per axis,
so the two cost the same at every step, whatever the offset; a shifted partition holds one
more along each shifted axis, of the same total area.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]

STRATEGIES = ("none", "nonoverlap", "explicit", "implicit", "partition")
STAGE2_STRATEGIES = STRATEGIES[:4]  # tiles of one size, as stage II's UNets take them
SHIFTING = ("implicit", "partition")  # the strategies whose grid shifts every step
WEIGHTINGS = ("gaussian", "uniform")
OFFSET_MODES = ("random", "fixed")
FILLS = ("eps", "latent")

GAUSSIAN_VARIANCE = 0.01  # in tile-normalised coordinates, as StableSR's tiled sampler


@dataclass(frozen=True)
class TilingConfig:
    """How a latent is cut into tiles at each step. Validated on construction."""

    strategy: str = "implicit"
    tile: int = 64
    overlap: int = 32
    weighting: str = "gaussian"
    offset: str = "random"
    offset_range: int = 32
    reset_every: int = 4
    fill: str = "eps"
    tile_batch_size: int = 1

    def __post_init__(self):
        def check(ok: bool, message: str):
            if not ok:
                raise ValueError(message)

        check(self.strategy in STRATEGIES,
              f"unknown tiling strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        check(self.weighting in WEIGHTINGS,
              f"unknown tile weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        check(self.offset in OFFSET_MODES,
              f"unknown offset mode {self.offset!r}; choose one of {', '.join(OFFSET_MODES)}")
        check(self.fill in FILLS, f"unknown fill {self.fill!r}; choose one of {', '.join(FILLS)}")
        check(self.tile > 0, f"tile size must be positive, got {self.tile}")
        check(self.overlap >= 0, f"overlap must not be negative, got {self.overlap}")
        check(self.strategy != "explicit" or self.overlap < self.tile,
              f"overlap ({self.overlap}) must be smaller than the tile ({self.tile})")
        check(self.offset_range >= 0, f"offset range must not be negative, got {self.offset_range}")
        check(self.offset_range <= self.tile,
              f"offset range ({self.offset_range}) must not exceed the tile ({self.tile})")
        check(self.reset_every >= 1, f"reset_every must be at least 1, got {self.reset_every}")
        check(self.tile_batch_size >= 1,
              f"tile_batch_size must be at least 1, got {self.tile_batch_size}")

    def as_record(self) -> dict:
        """The parameters that matter for this strategy, for results files."""
        record = asdict(self)
        if self.strategy != "explicit":
            record.pop("overlap")
        if self.strategy not in SHIFTING:
            for key in ("offset", "offset_range", "reset_every"):
                record.pop(key)
        if self.strategy != "implicit":  # only the implicit grid leaves a strip to fill
            record.pop("fill")
        if self.strategy == "partition":  # one tile per cell: the weights cancel
            record.pop("weighting")
        return record


def axis_origins(size: int, tile: int, stride: int, offset: int = 0) -> list[int]:
    """Tile origins along one axis: ``k * stride + offset`` clamped into ``[0, size - tile]``.

    The count is fixed by the stride alone (``ceil((size - (tile - stride)) / stride)``), so
    an offset moves tiles but never adds or removes one. A ``size`` no larger than ``tile``
    gives one tile at 0.
    """
    if size <= tile:
        return [0]
    overlap = tile - stride
    count = math.ceil((size - overlap) / stride)
    return [min(max(k * stride + offset, 0), size - tile) for k in range(count)]


def tile_count(size_hw: tuple[int, int], config: TilingConfig) -> int:
    """Tiles per step for a latent of ``size_hw`` (Eq. 4 for ``explicit``)."""
    return len(plan_step(size_hw, config).windows)


def _stride(config: TilingConfig) -> int:
    return config.tile - config.overlap if config.strategy == "explicit" else config.tile


def gaussian_weights(height: int, width: int) -> torch.Tensor:
    """StableSR's tile weight map: a separable Gaussian of variance 0.01 on [-0.5, 0.5]²."""

    def profile(n: int) -> torch.Tensor:
        u = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) / n
        return torch.exp(-u * u / (2 * GAUSSIAN_VARIANCE))

    return profile(height)[:, None] * profile(width)[None, :]


def axis_spans(size: int, tile: int, offset: int = 0) -> list[tuple[int, int]]:
    """A shifted partition of one axis into (start, length): cuts at ``offset + k * tile`` inside the axis, so
    the first and last spans may be short; a ``size`` no larger than ``tile`` is one span."""
    if size <= tile:
        return [(0, size)]
    cuts = [0] + [c for c in range(offset % tile, size, tile) if c > 0] + [size]
    return [(start, end - start) for start, end in zip(cuts, cuts[1:])]


@dataclass
class StepPlan:
    """Where the tiles of one step lie: ``windows`` are (top, left); all tiles are ``tile_hw`` unless
    ``sizes`` gives each window's (a partition's)."""

    windows: list[tuple[int, int]]
    tile_hw: tuple[int, int]
    offset: tuple[int, int]
    sizes: Optional[list[tuple[int, int]]] = None

    def size_of(self, index: int) -> tuple[int, int]:
        return self.tile_hw if self.sizes is None else self.sizes[index]


def plan_step(size_hw: tuple[int, int], config: TilingConfig,
              offset: tuple[int, int] = (0, 0)) -> StepPlan:
    """The tile windows of one step for a latent of ``size_hw`` shifted by ``offset`` (dy, dx)."""
    height, width = size_hw
    if config.strategy == "none":
        return StepPlan([(0, 0)], (height, width), (0, 0))
    tile_h, tile_w = min(config.tile, height), min(config.tile, width)
    if config.strategy == "partition":
        spans = [(y, x, h, w) for y, h in axis_spans(height, config.tile, offset[0])
                 for x, w in axis_spans(width, config.tile, offset[1])]
        return StepPlan([(y, x) for y, x, _, _ in spans], (tile_h, tile_w), offset, [(h, w) for *_, h, w in spans])
    stride = _stride(config)
    ys = axis_origins(height, tile_h, stride, offset[0])
    xs = axis_origins(width, tile_w, stride, offset[1])
    return StepPlan([(y, x) for y in ys for x in xs], (tile_h, tile_w), offset)


def step_offset(step_index: int, config: TilingConfig,
                generator: Optional[torch.Generator]) -> tuple[int, int]:
    """The grid offset (dy, dx) of one step; (0, 0) except on a shifting strategy's shifting steps."""
    if config.strategy not in SHIFTING or step_index % config.reset_every == 0 or config.offset_range <= 1:
        return (0, 0)
    if config.offset == "fixed":
        return (config.offset_range // 2, config.offset_range // 2)
    dy, dx = torch.randint(0, config.offset_range, (2,), generator=generator).tolist()
    return (dy, dx)


def stitch(latent: torch.Tensor, t: torch.Tensor, denoiser: Denoiser, plan: StepPlan,
           weights: torch.Tensor, cond: Optional[torch.Tensor] = None,
           tile_batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Weighted average of the denoiser's predictions over the plan's tiles (a partition's tiles each keep
    their own prediction: they do not overlap).

    Returns the stitched prediction (zero where no tile lies), the coverage mask
    (1, 1, H, W) and the number of denoiser calls made. Tiles of a batch are concatenated
    along the batch axis, so a latent of batch B gives calls of ``B * tiles`` rows; ``cond``
    (same spatial size as the latent) is cut into the same windows.
    """
    batch = latent.shape[0]
    total = torch.zeros_like(latent)
    weight_sum = torch.zeros((1, 1) + latent.shape[2:], dtype=latent.dtype, device=latent.device)
    calls = 0
    for group in _batches(plan, tile_batch_size):
        (tile_h, tile_w), = {plan.size_of(i) for i in group}
        window_weights = (weights if plan.sizes is None else torch.ones(tile_h, tile_w)).to(latent)
        crops = [(slice(None), slice(None), slice(y, y + tile_h), slice(x, x + tile_w))
                 for y, x in (plan.windows[i] for i in group)]
        tiles = torch.cat([latent[c] for c in crops])
        cond_tiles = None if cond is None else torch.cat([cond[c] for c in crops])
        predictions = denoiser(tiles, t, cond_tiles)
        calls += 1
        for k, crop in enumerate(crops):
            total[crop] += predictions[k * batch:(k + 1) * batch] * window_weights
            weight_sum[crop] += window_weights
    covered = weight_sum > 0
    return total / torch.where(covered, weight_sum, torch.ones_like(weight_sum)), covered, calls


def _batches(plan: StepPlan, tile_batch_size: int) -> list[list[int]]:
    """The plan's windows in batches of at most ``tile_batch_size``, consecutive and of one size each."""
    batches = []
    for index in range(len(plan.windows)):
        if batches and len(batches[-1]) < tile_batch_size and plan.size_of(batches[-1][0]) == plan.size_of(index):
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


@dataclass
class TiledDenoiser:
    """One sampling run's tiled noise prediction: plans each step, stitches, fills, counts, logs.

    Create one per sample: it keeps the previous step's stitched prediction (for
    ``fill="eps"``), the coverage of the last step (for ``fill="latent"``), the number of
    denoiser calls and tile evaluations, and the offset of every step, so that a run can be
    replayed from its seed and its log.
    """

    denoiser: Denoiser
    config: TilingConfig
    generator: Optional[torch.Generator] = None
    calls: int = 0
    tile_evaluations: int = 0
    offsets: list[tuple[int, int]] = field(default_factory=list)
    uncovered: Optional[torch.Tensor] = None
    _previous: Optional[torch.Tensor] = None

    def __call__(self, latent: torch.Tensor, t: torch.Tensor, step_index: int,
                 cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        offset = step_offset(step_index, self.config, self.generator)
        if self._previous is None:
            offset = (0, 0)  # nothing to fill an uncovered strip with yet
        plan = plan_step(tuple(latent.shape[2:]), self.config, offset)
        if self.config.strategy == "none":
            prediction, covered, calls = self.denoiser(latent, t, cond), None, 1
        else:
            weights = (gaussian_weights(*plan.tile_hw) if self.config.weighting == "gaussian"
                       else torch.ones(plan.tile_hw))
            prediction, covered, calls = stitch(latent, t, self.denoiser, plan, weights, cond,
                                                self.config.tile_batch_size)
        self.uncovered = None if covered is None or bool(covered.all()) else ~covered
        if self.uncovered is not None and self.config.fill == "eps":
            prediction = torch.where(self.uncovered, self._previous, prediction)
        self.calls += calls
        self.tile_evaluations += len(plan.windows)
        self.offsets.append(offset)
        self._previous = prediction
        return prediction
