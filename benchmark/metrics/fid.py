"""FID: Frechet distance between Gaussians fitted to Inception features.

The distance is clean-fid's `frechet_distance` (scipy sqrtm, the pytorch-fid / TTUR
formula); tests cross-check it against torchmetrics' eigenvalue form. Reference
statistics are cached on disk per data set, keyed by a hash of the reference file list
(or manifest) together with the extractor's conventions and, for patch FID, the crop
protocol, so statistics from random `tiny` weights can never be reused for real weights.
The cache holds the reference features too (float32, as the network returns them), so KID
reads the very features FID was fitted to.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from cleanfid.fid import frechet_distance as _clean_fid_frechet_distance
from PIL import Image

from .images import ImageLike
from .inception import RESIZE_CONVENTIONS, InceptionOutputs, InceptionV3, inception_outputs
from .patches import PatchProtocol, patch_conventions, patch_outputs

DISTANCE_CONVENTION = "cleanfid.fid.frechet_distance (scipy sqrtm); statistics: mean, np.cov (N - 1)"
LOW_RANK_CONVENTION = ("exact low-rank form for fewer images than feature dimensions: Tr sqrt(S_g S_r) = "
                       "sum of sqrt(eig(A^T S_r A)) with S_g = A A^T; statistics: mean, np.cov (N - 1)")


@dataclass(frozen=True)
class ReferenceStats:
    """Gaussian statistics of a reference set, its features, and where they came from."""

    key: str
    mu: np.ndarray
    sigma: np.ndarray
    count: int
    manifest_sha256: str
    conventions: dict
    cache_path: Path
    from_cache: bool
    features: Optional[np.ndarray] = None


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of N x D features, as clean-fid fits them."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors (N x D), got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), the suite's one implementation."""
    return float(_clean_fid_frechet_distance(mu1, sigma1, mu2, sigma2))


def manifest_hash(images: Iterable[ImageLike], manifest: "str | os.PathLike | None" = None) -> str:
    """sha256 of the manifest file if given, else of the sorted file list (path, size, mtime) or pixels."""
    if manifest is not None:
        return hashlib.sha256(Path(manifest).read_bytes()).hexdigest()
    lines = []
    for image in images:
        if isinstance(image, (str, os.PathLike)):
            stat = os.stat(image)
            lines.append(f"{os.fspath(image)}\t{stat.st_size}\t{stat.st_mtime_ns}")
        else:
            array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
            lines.append(f"{array.shape}\t{hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def reference_stats(
    images: Iterable[ImageLike],
    key: str,
    cache_dir: "str | os.PathLike",
    net: InceptionV3,
    manifest: "str | os.PathLike | None" = None,
    batch_size: int = 32,
    protocol: Optional[PatchProtocol] = None,
    mode: str = "clean",
) -> ReferenceStats:
    """Statistics of the reference set `key` (of its crops under `protocol`, if given; resized as clean-fid's
    `mode` does), from `cache_dir` when its file list, extractor, resize and protocol match."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", key):
        raise ValueError(f"reference key must be a plain file-name stem, got {key!r}")
    images = list(images)
    digest = manifest_hash(images, manifest)
    conventions = {"resize": RESIZE_CONVENTIONS[mode], **net.conventions} if protocol is None \
        else patch_conventions(net, protocol, mode)
    cache_id = hashlib.sha256(json.dumps([digest, conventions], sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{key}-{cache_id}.npz"
    if path.is_file():
        with np.load(path) as cached:
            if "features" in cached:  # files written before KID hold statistics only: made again
                return ReferenceStats(key, cached["mu"], cached["sigma"], int(cached["count"]), digest,
                                      json.loads(str(cached["conventions"])), path, from_cache=True,
                                      features=cached["features"].astype(np.float64))
    outputs = inception_outputs(images, net, batch_size, mode) if protocol is None \
        else patch_outputs(images, net, protocol, batch_size, mode)
    mu, sigma = gaussian_stats(outputs.features)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, mu=mu, sigma=sigma, count=len(outputs.features), features=outputs.features.astype(np.float32),
                 manifest_sha256=digest, conventions=json.dumps(outputs.conventions, sort_keys=True))
    os.replace(tmp.name, path)  # atomic: concurrent runs never read a half-written file
    return ReferenceStats(key, mu, sigma, len(outputs.features), digest, outputs.conventions, path,
                          from_cache=False, features=outputs.features)


def low_rank_frechet_distance(features: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """The Frechet distance of N x D `features` (N <= D) to (mu, sigma), exactly and in O(N^2 D + N D^2).

    The generated covariance is A A^T with A = centred features^T / sqrt(N - 1), so the
    nonzero eigenvalues of S_g S_r are those of the N x N matrix A^T S_r A. scipy's sqrtm of a
    2048 x 2048 product takes half a minute on two cores and is ill-conditioned for rank < D.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors (N x D), got shape {features.shape}")
    mean = features.mean(axis=0)
    a = (features - mean) / np.sqrt(len(features) - 1)  # N x D, S_g = a.T @ a
    eigenvalues = np.linalg.eigvalsh(a @ sigma @ a.T).clip(min=0)
    return float(((mean - mu) ** 2).sum() + (a ** 2).sum() + np.trace(sigma) - 2 * np.sqrt(eigenvalues).sum())


def frechet_resampler(features: np.ndarray, mu: np.ndarray, sigma: np.ndarray):
    """The Frechet distance of chosen rows of ``features`` (positions, with repeats) to (mu, sigma). Below D rows
    it is :func:`low_rank_frechet_distance` read off three Gram matrices of all rows, made once (F S F^T, F F^T
    and F mu): a bootstrap resample then costs one N x N eigendecomposition, not an N x D x D product. From D
    rows up it goes through the square root of ``sigma``, computed once, so that a resample costs one symmetric
    eigendecomposition instead of a general matrix square root."""
    features = np.asarray(features, dtype=np.float64)
    trace_sigma = float(np.trace(sigma))
    grams, root = [], []

    def low_rank(positions: np.ndarray) -> float:
        if not grams:
            grams.append((features @ sigma @ features.T, features @ features.T, features @ mu))
        through_sigma, plain, along_mu = grams[0]
        chosen = np.ix_(positions, positions)

        def centred(gram: np.ndarray) -> np.ndarray:  # the Gram matrix of the chosen rows less their mean
            block = gram[chosen]
            return block - block.mean(0, keepdims=True) - block.mean(1, keepdims=True) + block.mean()

        scale = len(positions) - 1
        eigenvalues = np.linalg.eigvalsh(centred(through_sigma) / scale).clip(min=0)
        # |mean - mu|^2 + trace(S_g) + trace(S_r) - 2 trace(sqrt(S_g S_r)), every term from the Grams
        return float(plain[chosen].mean() - 2 * along_mu[positions].mean() + np.trace(centred(plain)) / scale
                     + float(mu @ mu) + trace_sigma - 2 * np.sqrt(eigenvalues).sum())

    def resample(positions) -> float:
        positions = np.asarray(positions)
        if len(positions) < 2:
            raise ValueError(f"need at least 2 feature vectors, got {len(positions)}")
        if len(positions) < features.shape[1]:
            return low_rank(positions)
        if not root:
            values, vectors = np.linalg.eigh(sigma)
            root.append((vectors * np.sqrt(values.clip(min=0))) @ vectors.T)
        mean, covariance = gaussian_stats(features[positions])
        eigenvalues = np.linalg.eigvalsh(root[0] @ covariance @ root[0]).clip(min=0)
        return float(((mean - mu) ** 2).sum() + np.trace(covariance) + trace_sigma
                     - 2 * np.sqrt(eigenvalues).sum())

    return resample


def fid_score(generated: InceptionOutputs, reference: ReferenceStats) -> dict:
    """FID of generated images against a reference set, with the conventions that produced it."""
    if generated.conventions != reference.conventions:
        raise ValueError(
            "generated and reference features were extracted differently:\n"
            f"  generated: {generated.conventions}\n  reference: {reference.conventions}"
        )
    n, dimensions = generated.features.shape
    if n < dimensions:
        value, distance = low_rank_frechet_distance(generated.features, reference.mu, reference.sigma), \
            LOW_RANK_CONVENTION
    else:
        value, distance = frechet_distance(*gaussian_stats(generated.features), reference.mu, reference.sigma), \
            DISTANCE_CONVENTION
    return {
        "metric": "fid",
        "value": value,
        "n": len(generated.features),
        "n_reference": reference.count,
        "reference": {"key": reference.key, "manifest_sha256": reference.manifest_sha256},
        "conventions": {**generated.conventions, "distance": distance},
    }
