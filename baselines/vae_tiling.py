"""VAE encode and decode in tiles, so that their memory stays flat as the image grows.

A VAE's convolutions see only a few latent pixels around each output pixel, but its
GroupNorms normalise with statistics of the *whole* image, and the x4 upscaler's VAE
attends over the whole latent. Cutting the image into tiles therefore changes two things:
the context at tile borders (handled by a halo of context cut off after each tile) and the
normalisation statistics (each tile's own would give each tile its own tone). Modes:

- ``off``: one call on the whole image (memory grows with the area, quadratically with
  the x4 VAE's mid-block attention);
- ``diffusers``: ``AutoencoderKL.enable_tiling()`` at our tile size, the library's own
  scheme (overlapping tiles blended linearly, per-tile GroupNorm statistics);
- ``sync``: tiles with a halo, every GroupNorm normalised with one set of statistics
  for the whole image, gathered once over the pixels of up to ``sample_tiles`` tiles
  (spread evenly; each in a window with its context) run as one batch: over every pixel
  once where the image has no more tiles than that (the ASD authors' tiled VAE estimates
  them on a downscaled copy; tiles keep the image's own scale, which matters for rough
  latents). Where that batch runs out of memory it is run a few windows at a time, one
  pass per GroupNorm, to the same statistics. Inside a tile the mid-block attention sees
  the tile and its halo only;
- ``auto``: ``sync`` when the latent is larger than one tile, else ``off``.

When one tile covers the image, every mode is the untiled call. The encoder returns the
posterior's moments, so the caller samples the latent with its own generator exactly as
``vae.encode(x).latent_dist.sample(generator)`` would. This module knows diffusers'
``AutoencoderKL`` (its ``encoder``, ``decoder``, ``quant_conv``, ``post_quant_conv``).
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
from accelerate.utils.memory import clear_device_cache

from baselines.notes import SampleNote
from baselines.out_of_memory import is_out_of_memory

VAE_TILING_MODES = ("auto", "off", "diffusers", "sync")

#: A region of the VAE's input image: (top, left, height, width) in px -> (1, C, height, width).
ImageRegion = Callable[[int, int, int, int], torch.Tensor]


@dataclass(frozen=True)
class VaeTiling:
    """How the VAE is tiled. ``tile`` and ``halo`` are in latent px; ``sample_tiles`` is how
    many tiles, spread evenly, the shared GroupNorm statistics are gathered on, and
    ``sample_batch`` how many of their windows run at once (all of them by default, halved
    while they run out of memory: the statistics are the same, the time grows)."""

    mode: str = "auto"
    tile: int = 128
    halo: int = 16
    sample_tiles: int = 16
    sample_batch: Optional[int] = None

    def __post_init__(self):
        if self.mode not in VAE_TILING_MODES:
            raise ValueError(f"unknown VAE tiling {self.mode!r}; choose one of {', '.join(VAE_TILING_MODES)}")
        if self.tile < 8 or self.halo < 0 or self.sample_tiles < 1 or (self.sample_batch or 1) < 1:
            raise ValueError(f"VAE tiles need tile >= 8 latent px, halo >= 0, sample_tiles >= 1 and sample_batch "
                             f">= 1, got {self}")

    def effective(self, latent_hw: tuple[int, int]) -> str:
        """The mode used for a latent of this size: ``auto`` resolved, ``off`` where one tile covers it."""
        if max(latent_hw) <= self.tile:
            return "off"
        return "sync" if self.mode == "auto" else self.mode

    def as_record(self) -> dict:
        return asdict(self)


def vae_factor(vae) -> int:
    """Image px per latent px: each encoder block but the last halves the size."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


# --------------------------------------------------------------------------- the grid


def spans(size: int, tile: int) -> list[tuple[int, int]]:
    """[start, end) of the core tiles along one axis: tiles of ``tile``, the last one shorter."""
    return [(start, min(start + tile, size)) for start in range(0, size, tile)]


def tiles(latent_hw: tuple[int, int], tile: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Every core tile of a latent as ((top, bottom), (left, right)), row by row."""
    return [(rows, cols) for rows in spans(latent_hw[0], tile) for cols in spans(latent_hw[1], tile)]


def with_halo(span: tuple[int, int], halo: int, size: int) -> tuple[int, int]:
    return max(0, span[0] - halo), min(size, span[1] + halo)


def spread(items: list, count: int) -> list:
    """``count`` items evenly spread over ``items`` (all of them if there are fewer)."""
    if count >= len(items):
        return list(items)
    step = len(items) / count
    return [items[int((k + 0.5) * step)] for k in range(count)]


# --------------------------------------------------------------------------- shared GroupNorm statistics


#: A tile's core inside its sample window: (top, bottom), (left, right) in the window's latent px.
Core = tuple[tuple[int, int], tuple[int, int]]


def _layer_hw(x: torch.Tensor, window_hw: tuple[int, int]) -> tuple[int, int]:
    """A layer's spatial size; an attention block's GroupNorm sees (B, C, H * W): the window's shape, scaled."""
    if x.dim() == 4:
        return tuple(x.shape[-2:])
    scale = math.sqrt(x.shape[-1] / (window_hw[0] * window_hw[1]))
    return round(window_hw[0] * scale), round(window_hw[1] * scale)


def _window_moments(x: torch.Tensor, groups: int, cores: list[Core],
                    window_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-window, per-group mean and variance over each tile's core, and the cores' pixel counts: one window at a
    time and on views, so that no copy of the batch is made (the batch of sample windows is the largest thing a
    tiled decode holds)."""
    height, width = _layer_hw(x, window_hw)
    scale = height // window_hw[0]
    spatial = x.reshape(x.shape[0], groups, -1, height, width)  # B, G, C/G, h, w: a view
    means, variances, counts = [], [], []
    for window, ((top, bottom), (left, right)) in enumerate(cores):
        core = spatial[window, :, :, top * scale:bottom * scale, left * scale:right * scale]
        variance, mean = torch.var_mean(core.float(), dim=(1, 2, 3), unbiased=False)
        means.append(mean), variances.append(variance), counts.append((bottom - top) * (right - left))
    counts = torch.tensor(counts, dtype=torch.float32, device=x.device)
    return torch.stack(means), torch.stack(variances), counts


def _pooled(means: torch.Tensor, variances: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows' moments pooled exactly, each weighted by its pixels: mean of the means, variance within plus
    between."""
    weights = counts[:, None] / counts.sum()
    mean = (weights * means).sum(0)
    return mean, (weights * (variances + (means - mean).square())).sum(0)


class _Waiting(Exception):
    """A GroupNorm's statistics wait for windows of later batches: this batch's pass ends there."""


class SharedGroupNorms:
    """Every GroupNorm in ``module`` normalises with statistics shared across calls (a context manager; the
    modules are restored on exit).

    Without ``cores``, a GroupNorm's first call gathers its per-group mean and variance over that call's whole
    batch and later calls reuse them. With them, :meth:`gather` reads the statistics over the tiles' ``cores``
    in their sample windows (``window_hw`` latent px, scaled to each layer's resolution), pooled over every
    window. Normalising is one multiply-add per element in float32 (scale and shift folded per channel), so
    that it holds one tensor of the layer's size. ``stats`` maps each GroupNorm to its (mean, var).
    """

    def __init__(self, module: nn.Module, cores: Optional[list[Core]] = None,
                 window_hw: Optional[tuple[int, int]] = None):
        self.norms = [m for m in module.modules() if isinstance(m, nn.GroupNorm)]
        self.cores, self.window_hw = cores, window_hw
        self.stats: dict[nn.GroupNorm, tuple[torch.Tensor, torch.Tensor]] = {}
        self._moments: dict[nn.GroupNorm, dict[int, tuple]] = {}  # per GroupNorm, per batch's first window
        self._first = 0  # the first window of the batch running now

    def __enter__(self) -> "SharedGroupNorms":
        for norm in self.norms:
            norm.forward = self._shared(norm)
        return self

    def __exit__(self, *exc_info):
        for norm in self.norms:
            del norm.forward  # back to the class's forward

    def gather(self, network: Callable[[torch.Tensor], torch.Tensor], windows: torch.Tensor, batch: int):
        """The statistics of ``network`` over the sample ``windows`` (a batch, one per core), run ``batch`` at a
        time. With one batch that is one pass. With more, a GroupNorm's statistics need every batch's pixels
        before any batch can go past it, so each pass takes every batch up to the first GroupNorm still waiting
        and the last batch on: at most as many passes as GroupNorms, and the same statistics, in one batch's
        memory. Called again (with a smaller batch, after running out of memory), it keeps the statistics
        already pooled: each is final once every window has passed its GroupNorm."""
        self._moments.clear()
        while True:
            for self._first in range(0, len(windows), batch):
                try:
                    network(windows[self._first:self._first + batch])
                except _Waiting:
                    continue
                return

    def _statistics(self, norm: nn.GroupNorm, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cores is None:
            variance, mean = torch.var_mean(x.reshape(x.shape[0], norm.num_groups, -1).float(), dim=(0, 2),
                                            unbiased=False)
            return mean, variance
        recorded = self._moments.setdefault(norm, {})
        if self._first not in recorded:
            cores = self.cores[self._first:self._first + x.shape[0]]
            recorded[self._first] = _window_moments(x, norm.num_groups, cores, self.window_hw)
        if sum(len(counts) for _, _, counts in recorded.values()) < len(self.cores):
            raise _Waiting
        return _pooled(*(torch.cat(parts) for parts in zip(*(recorded[first] for first in sorted(recorded)))))

    def _shared(self, norm: nn.GroupNorm):
        def forward(x: torch.Tensor) -> torch.Tensor:
            if norm not in self.stats:
                self.stats[norm] = self._statistics(norm, x)
            mean, var = self.stats[norm]
            per_group = x.shape[1] // norm.num_groups
            scale = torch.rsqrt(var + norm.eps).repeat_interleave(per_group)
            shift = -mean.repeat_interleave(per_group) * scale
            if norm.affine:
                scale, shift = scale * norm.weight.float(), shift * norm.weight.float() + norm.bias.float()
            shape = (1, -1) + (1,) * (x.dim() - 2)
            return torch.addcmul(shift.view(shape), x, scale.view(shape)).to(x.dtype)

        return forward


def sample_windows(latent_hw: tuple[int, int], tiling: VaeTiling) -> tuple[list, list[Core], tuple[int, int]]:
    """Where the shared statistics are gathered: ``tiling.sample_tiles`` tiles spread evenly
    over the grid (all of them if there are no more), each in a window of one tile and its
    halo moved inside the image; the tiles' cores in their windows, and the windows' size.
    The cores' pixels count, so that with every tile sampled each pixel of the image counts once."""
    height, width = (min(tiling.tile + 2 * tiling.halo, side) for side in latent_hw)
    windows, cores = [], []
    for rows, cols in spread(tiles(latent_hw, tiling.tile), tiling.sample_tiles):
        top = min(max(0, (rows[0] + rows[1] - height) // 2), latent_hw[0] - height)
        left = min(max(0, (cols[0] + cols[1] - width) // 2), latent_hw[1] - width)
        windows.append(((top, top + height), (left, left + width)))
        cores.append(((rows[0] - top, rows[1] - top), (cols[0] - left, cols[1] - left)))
    return windows, cores, (height, width)


def _gather_in_memory(shared: SharedGroupNorms, network, windows: torch.Tensor, batch: int):
    """:meth:`SharedGroupNorms.gather`, the batch of windows halved while it runs out of memory (the statistics
    do not change, the passes grow in number); one window that does not fit is out of memory."""
    while True:
        try:
            return shared.gather(network, windows, batch)
        except Exception as error:
            if batch == 1 or not is_out_of_memory(error):
                raise
        batch = (batch + 1) // 2
        clear_device_cache(garbage_collection=True)
        warnings.warn(f"the VAE's statistics batch of {len(windows)} windows ran out of memory; gathered "
                      f"{batch} at a time (the same statistics, up to one pass per GroupNorm: more seconds)",
                      SampleNote, stacklevel=2)


def _run_tiled(network: Callable[[torch.Tensor], torch.Tensor], module: nn.Module, crop_of, latent_hw, tiling,
               factor_out: int, out: torch.Tensor) -> torch.Tensor:
    """``network`` over every tile (with its halo) into ``out``, GroupNorms shared.

    ``crop_of(rows, cols)`` gives the network's input for a latent region; ``factor_out`` is
    output px per latent px (decode: the VAE factor, encode: 1).
    """
    windows, cores, window_hw = sample_windows(latent_hw, tiling)
    halo = lambda rows, cols: (with_halo(rows, tiling.halo, latent_hw[0]), with_halo(cols, tiling.halo, latent_hw[1]))
    with SharedGroupNorms(module, cores, window_hw) as shared:
        _gather_in_memory(shared, network, torch.cat([crop_of(rows, cols) for rows, cols in windows]),
                          tiling.sample_batch or len(windows))
        for rows, cols in tiles(latent_hw, tiling.tile):
            (top, bottom), (left, right) = halo(rows, cols)
            result = network(crop_of((top, bottom), (left, right)))
            r0, c0 = (rows[0] - top) * factor_out, (cols[0] - left) * factor_out
            out[..., rows[0] * factor_out:rows[1] * factor_out, cols[0] * factor_out:cols[1] * factor_out] = \
                result[..., r0:r0 + (rows[1] - rows[0]) * factor_out, c0:c0 + (cols[1] - cols[0]) * factor_out]
    return out


@contextmanager
def _diffusers_tiling(vae, tiling: VaeTiling):
    """``vae.enable_tiling()`` with tiles of ``tiling.tile`` latent px, undone on exit."""
    factor = vae_factor(vae)
    saved = (vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size)
    vae.enable_tiling()
    vae.tile_sample_min_size, vae.tile_latent_min_size = tiling.tile * factor, tiling.tile
    try:
        yield
    finally:
        vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size = saved


# --------------------------------------------------------------------------- decode and encode


def _decoder(vae) -> Callable[[torch.Tensor], torch.Tensor]:
    def decode(z: torch.Tensor) -> torch.Tensor:
        if vae.post_quant_conv is not None:
            z = vae.post_quant_conv(z)
        return vae.decoder(z)

    return decode


def _encoder(vae) -> Callable[[torch.Tensor], torch.Tensor]:
    def encode(x: torch.Tensor) -> torch.Tensor:
        moments = vae.encoder(x)
        return vae.quant_conv(moments) if vae.quant_conv is not None else moments

    return encode


@torch.no_grad()
def decode(vae, latent: torch.Tensor, tiling: VaeTiling) -> torch.Tensor:
    """``vae.decode(latent).sample`` as float32 (1, C, H, W), tiled as ``tiling`` says.

    ``latent`` is already divided by the scaling factor. Tiles are decoded in the VAE's
    dtype and written into one float32 image, the only full-size tensor.
    """
    latent_hw = tuple(latent.shape[-2:])
    mode = tiling.effective(latent_hw)
    z = latent.to(vae.device, vae.dtype)
    if mode == "off":
        return vae.decode(z).sample.float()
    if mode == "diffusers":
        with _diffusers_tiling(vae, tiling):
            return vae.decode(z).sample.float()
    factor = vae_factor(vae)
    out = torch.empty((latent.shape[0], vae.config.out_channels, latent_hw[0] * factor, latent_hw[1] * factor),
                      dtype=torch.float32, device=vae.device)
    crop = lambda rows, cols: z[..., rows[0]:rows[1], cols[0]:cols[1]]
    return _run_tiled(_decoder(vae), vae.decoder, crop, latent_hw, tiling, factor, out)

def decode_latents(vae, latent: torch.Tensor, tiling: VaeTiling) -> torch.Tensor:
    """The image of a diffusion model's latent: the VAE's scaling undone, and its shift (FLUX's VAE has
    one), then :func:`decode`."""
    config = vae.config
    return decode(vae, latent.float() / config.scaling_factor + (getattr(config, "shift_factor", None) or 0), tiling)


def encode_latents(vae, pixels: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A diffusion model's latent of ``pixels``, untiled: a posterior sample drawn from ``generator`` (the
    mean without one), shifted and scaled as :func:`decode_latents` undoes."""
    dist = vae.encode(pixels).latent_dist
    z = dist.sample(generator=generator) if generator is not None else dist.mode()
    return (z - (getattr(vae.config, "shift_factor", None) or 0)) * vae.config.scaling_factor



@torch.no_grad()
def encode_moments(vae, region: ImageRegion, size: tuple[int, int], tiling: VaeTiling) -> torch.Tensor:
    """The posterior's moments (mean and log-variance, stacked as the VAE stacks them) of an image.

    The image (``size`` px, multiples of the VAE factor) is read through ``region`` so that a
    tiled encode never needs all of it at once; ``off`` and ``diffusers`` read it whole.
    Wrap the result in diffusers' ``DiagonalGaussianDistribution`` to sample.
    """
    factor = vae_factor(vae)
    latent_hw = (size[0] // factor, size[1] // factor)
    mode = tiling.effective(latent_hw)
    read = lambda top, left, height, width: region(top, left, height, width).to(vae.device, vae.dtype)
    if mode in ("off", "diffusers"):
        image = read(0, 0, *size)
        if mode == "off":
            return _encoder(vae)(image).float()
        with _diffusers_tiling(vae, tiling):
            return vae.encode(image).latent_dist.parameters.float()
    out = torch.empty((1, 2 * vae.config.latent_channels) + latent_hw, dtype=torch.float32, device=vae.device)
    crop = lambda rows, cols: read(rows[0] * factor, cols[0] * factor, (rows[1] - rows[0]) * factor,
                                   (cols[1] - cols[0]) * factor)
    return _run_tiled(_encoder(vae), vae.encoder, crop, latent_hw, tiling, 1, out)


def latent_sample(moments: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """A posterior sample from the moments, drawn as ``latent_dist.sample(generator)`` draws it."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    return DiagonalGaussianDistribution(moments).sample(generator=generator)
