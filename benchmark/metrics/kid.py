"""KID: Kernel Inception Distance (Binkowski et al. 2018) on the features FID reads.

KID is the unbiased squared MMD between generated and reference Inception features under
the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets. Unlike
FID it is unbiased in the number of images, which is why high-resolution papers report it
beside FID on small sets. Subsets follow torchmetrics' KernelInceptionDistance (defaults
100 subsets of 1,000; per subset one ``torch.randperm`` of the reference features, then one
of the generated ones) but from a generator seeded here, so a score is reproducible and,
under ``torch.manual_seed(seed)``, torchmetrics draws the very same subsets. With fewer
images than the subset size, the subset size is the smaller set's size (clean-fid's rule)
and is recorded.
"""
from __future__ import annotations

import numpy as np
import torch

from .fid import ReferenceStats
from .inception import InceptionOutputs

SUBSETS = 100
SUBSET_SIZE = 1000
SEED = 0
KERNEL_CONVENTION = "cubic polynomial kernel (x.y / d + 1)^3, unbiased MMD^2 (torchmetrics / clean-fid form)"


def subset_indices(n_generated: int, n_reference: int, subsets: int = SUBSETS, size: int = SUBSET_SIZE,
                   seed: int = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """(reference indices, generated indices) of each subset, drawn as torchmetrics draws them."""
    generator = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(subsets):
        reference = torch.randperm(n_reference, generator=generator)[:size].numpy()
        generated = torch.randperm(n_generated, generator=generator)[:size].numpy()
        pairs.append((reference, generated))
    return pairs


def polynomial_mmd(reference: np.ndarray, generated: np.ndarray) -> float:
    """Unbiased MMD^2 of two m x d feature sets of equal size under the cubic kernel."""
    m, dimensions = reference.shape

    def kernel(a, b):
        return (a @ b.T / dimensions + 1) ** 3

    k_rr, k_gg, k_rg = kernel(reference, reference), kernel(generated, generated), kernel(reference, generated)
    within = (k_rr.sum() - np.trace(k_rr) + k_gg.sum() - np.trace(k_gg)) / (m * (m - 1))
    return float(within - 2 * k_rg.sum() / m ** 2)


def kernel_inception_distance(generated: np.ndarray, reference: np.ndarray, subsets: int = SUBSETS,
                              subset_size: int = SUBSET_SIZE, seed: int = SEED) -> tuple[float, float, int]:
    """(mean, population std over subsets, subset size used) of KID between N x D feature sets."""
    generated, reference = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
    if generated.ndim != 2 or reference.ndim != 2 or generated.shape[1] != reference.shape[1]:
        raise ValueError(f"need N x D feature sets of one D, got {generated.shape} and {reference.shape}")
    size = min(subset_size, len(generated), len(reference))
    if size < 2:
        raise ValueError(f"KID needs at least 2 generated and 2 reference feature vectors, got "
                         f"{len(generated)} and {len(reference)}")
    if subsets < 1:
        raise ValueError(f"KID needs at least one subset, got {subsets}")
    values = [polynomial_mmd(reference[r], generated[g])
              for r, g in subset_indices(len(generated), len(reference), subsets, size, seed)]
    return float(np.mean(values)), float(np.std(values)), size


def kid_score(generated: InceptionOutputs, reference: ReferenceStats, subsets: int = SUBSETS,
              subset_size: int = SUBSET_SIZE, seed: int = SEED) -> dict:
    """KID of generated images against a reference set, with its subsets and conventions."""
    if generated.conventions != reference.conventions:
        raise ValueError(
            "generated and reference features were extracted differently:\n"
            f"  generated: {generated.conventions}\n  reference: {reference.conventions}"
        )
    mean, std, size = kernel_inception_distance(generated.features, reference.features, subsets, subset_size, seed)
    return {
        "metric": "kid",
        "value": mean,
        "std": std,
        "n": len(generated.features),
        "n_reference": reference.count,
        "reference": {"key": reference.key, "manifest_sha256": reference.manifest_sha256},
        "conventions": {**generated.conventions, "kernel": KERNEL_CONVENTION, "subsets": subsets,
                        "subset_size": size, "subset_size_requested": subset_size, "subset_seed": seed,
                        "subset_draw": "torch.randperm per subset (reference, then generated), "
                                       "torch.Generator seeded with subset_seed"},
    }


GATHER = 1 << 22  # kernel entries gathered at once by block_sums: 32 MiB of float64


def block_sums(kernel: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``kernel[rows[s]][:, columns[s]].sum()`` for every subset s (rows and columns: subsets x size), gathered
    for as many subsets at once as :data:`GATHER` entries allow."""
    step = max(1, GATHER // (rows.shape[1] * columns.shape[1]))
    return np.concatenate([kernel[rows[i:i + step, :, None], columns[i:i + step, None, :]].sum((1, 2))
                           for i in range(0, len(rows), step)])


def kid_resampler(generated: np.ndarray, reference: np.ndarray, subsets: int = SUBSETS,
                  subset_size: int = SUBSET_SIZE, seed: int = SEED):
    """KID of chosen generated rows (positions, with repeats) against the fixed reference, equal to
    :func:`kernel_inception_distance` on those rows: the kernels of the full sets are computed once, and the
    subsets' draws once per count of rows, so that a bootstrap resample only gathers entries."""
    generated, reference = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
    dimensions = generated.shape[1]
    k_gg = (generated @ generated.T / dimensions + 1) ** 3
    k_rr = (reference @ reference.T / dimensions + 1) ** 3
    k_rg = (reference @ generated.T / dimensions + 1) ** 3
    draws: dict[int, tuple] = {}

    def subsets_for(count: int) -> tuple:
        if count not in draws:
            size = min(subset_size, count, len(reference))
            if size < 2:
                raise ValueError(f"KID needs at least 2 generated and 2 reference feature vectors, got {count}")
            pairs = subset_indices(count, len(reference), subsets, size, seed)
            rows = np.stack([r for r, _ in pairs])  # subsets x size, reference rows
            within_r = block_sums(k_rr, rows, rows) - k_rr[rows, rows].sum(1)
            draws[count] = size, rows, np.stack([g for _, g in pairs]), within_r
        return draws[count]

    def resample(positions) -> float:
        size, rows, columns, within_r = subsets_for(len(positions))
        chosen = np.asarray(positions)[columns]  # subsets x size, generated rows
        within_g = block_sums(k_gg, chosen, chosen) - k_gg[chosen, chosen].sum(1)
        across = block_sums(k_rg, rows, chosen)
        return float(np.mean((within_r + within_g) / (size * (size - 1)) - 2 * across / size ** 2))

    return resample
