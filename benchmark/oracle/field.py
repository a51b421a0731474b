"""A weight-free stand-in for a diffusion model: a Gaussian random field and its exact denoiser.

The "data" are stationary Gaussian random fields with a Matérn-like power spectrum
``S(f) ∝ (1 + (2π ℓ |f|)²)⁻²`` (unit variance per pixel, channels independent). For such
data the ideal noise prediction at noise level ᾱ is a linear filter with frequency response
``sqrt(1 - ᾱ) / (ᾱ S(f) + 1 - ᾱ)``. The oracle applies that filter truncated to a finite
support and with zero padding, so a tile sees nothing beyond its border, as a UNet does:
untiled sampling draws (nearly) true samples, and tiles whose borders stay in place leave
seams. Everything here is exact or analytic, so tiling strategies can be compared where no
pretrained weights exist.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import torch

from benchmark.metrics import frechet_distance

_NORMALISING_GRID = 512


@dataclass(frozen=True)
class GaussianField:
    """A stationary Gaussian random field; ``correlation_length`` in pixels."""

    channels: int = 4
    correlation_length: float = 3.0

    def spectrum(self, height: int, width: int) -> torch.Tensor:
        """Power spectrum on the FFT grid of a periodic ``height`` × ``width`` field (float64)."""
        return self._shape(height, width) / self._shape(_NORMALISING_GRID, _NORMALISING_GRID).mean()

    def _shape(self, height: int, width: int) -> torch.Tensor:
        fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
        fx = torch.fft.fftfreq(width, dtype=torch.float64)[None, :]
        radius2 = (2 * math.pi * self.correlation_length) ** 2 * (fy ** 2 + fx ** 2)
        return (1 + radius2) ** -2

    def sample(self, count: int, height: int, width: int,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """True samples (count, channels, height, width): a periodic field on a grid padded by
        several correlation lengths, cropped, so that the periodicity does not show."""
        pad = math.ceil(6 * self.correlation_length)
        big_h, big_w = height + 2 * pad, width + 2 * pad
        white = torch.randn((count, self.channels, big_h, big_w), generator=generator,
                            dtype=torch.float64)
        coloured = torch.fft.ifft2(torch.fft.fft2(white) * self.spectrum(big_h, big_w).sqrt()).real
        return coloured[..., pad:pad + height, pad:pad + width].float()

    def autocovariance(self, radius: int) -> torch.Tensor:
        """Covariance between pixels (dy, dx) apart, for |dy|, |dx| <= radius: (2r+1, 2r+1)."""
        grid = _NORMALISING_GRID
        gamma = torch.fft.ifft2(self.spectrum(grid, grid)).real
        gamma = torch.fft.fftshift(gamma)
        centre = grid // 2
        return gamma[centre - radius:centre + radius + 1, centre - radius:centre + radius + 1]

    def patch_covariance(self, patch: int) -> np.ndarray:
        """Covariance of the flattened ``patch`` × ``patch`` window of one channel."""
        gamma = self.autocovariance(patch - 1).numpy()
        idx = np.arange(patch)
        dy = idx[:, None, None, None] - idx[None, None, :, None]
        dx = idx[None, :, None, None] - idx[None, None, None, :]
        return gamma[dy + patch - 1, dx + patch - 1].reshape(patch * patch, patch * patch)

    def as_record(self) -> dict:
        return {"kind": "gaussian-random-field", **asdict(self),
                "spectrum": "(1 + (2π ℓ |f|)²)^-2, unit variance"}


@dataclass
class OracleDenoiser:
    """The field's posterior-mean noise predictor, truncated to ``(2r+1)²`` taps, zero padded.

    ``alphas_cumprod`` is the scheduler's ᾱ table indexed by training timestep. Callable as
    a tiling-engine denoiser ``f(latent_tile, t, cond_tile)``; ``cond`` is ignored.
    """

    field: GaussianField
    alphas_cumprod: torch.Tensor
    radius: int = 8
    _kernels: dict = field(default_factory=dict, repr=False)

    def kernel(self, t: int) -> torch.Tensor:
        """The truncated filter for timestep ``t``, shape (channels, 1, 2r+1, 2r+1)."""
        if t not in self._kernels:
            grid = max(128, 8 * self.radius)
            alpha_bar = float(self.alphas_cumprod[t])
            response = math.sqrt(1 - alpha_bar) / (
                alpha_bar * self.field.spectrum(grid, grid) + (1 - alpha_bar))
            taps = torch.fft.fftshift(torch.fft.ifft2(response).real)
            centre, r = grid // 2, self.radius
            taps = taps[centre - r:centre + r + 1, centre - r:centre + r + 1].float()
            self._kernels[t] = taps.expand(self.field.channels, 1, -1, -1).contiguous()
        return self._kernels[t]

    def __call__(self, latent: torch.Tensor, t, cond=None) -> torch.Tensor:
        kernel = self.kernel(int(t)).to(latent)
        return torch.nn.functional.conv2d(latent, kernel, padding=self.radius,
                                          groups=self.field.channels)

    def as_record(self) -> dict:
        return {"kind": "truncated-posterior-mean-filter", "radius": self.radius,
                "padding": "zeros"}


def patch_frechet_distance(samples: torch.Tensor, field: GaussianField, patch: int = 6,
                           stride: int = 2, margin: int = 0) -> float:
    """Fréchet distance between the Gaussian fit of ``patch``² windows of ``samples`` and the
    field's true patch distribution (mean 0, covariance from its spectrum).

    Windows are taken at every ``stride`` pixels of every channel of every sample, so tile
    borders are included in proportion to their area. ``margin`` pixels are dropped on every
    side first, to leave out the image edges (zero padding, FSTD's uncovered strip).
    """
    if margin:
        samples = samples[..., margin:-margin, margin:-margin]
    windows = samples.double().unfold(2, patch, stride).unfold(3, patch, stride)
    windows = windows.reshape(-1, patch * patch).numpy()
    mean = windows.mean(axis=0)
    covariance = np.cov(windows, rowvar=False)
    return float(frechet_distance(mean, covariance, np.zeros(patch * patch),
                                  field.patch_covariance(patch)))
