"""Inception Score from Inception-v3 logits (Salimans et al. 2016).

IS = exp(E_x KL(p(y|x) || p(y))), computed per split and reported as mean and
(population) standard deviation over splits, as the original code and StyleGAN2-ADA
do. Splits are contiguous and in the given order, so a result can be recomputed
exactly; with fewer images than splits, one split per image is used and recorded.
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from .inception import InceptionOutputs

SPLITS = 10


def inception_score_from_logits(logits: np.ndarray, splits: int = SPLITS) -> tuple[float, float, int]:
    """(mean, std over splits, splits used) of the Inception Score of N x C logits."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or len(logits) == 0:
        raise ValueError(f"need N x C logits, got shape {logits.shape}")
    used = min(splits, len(logits))
    scores = []
    for part in np.array_split(log_softmax(logits, axis=1), used):
        log_marginal = np.log(np.exp(part).mean(axis=0))
        kl = (np.exp(part) * (part - log_marginal)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores)), used


def inception_score(generated: InceptionOutputs, splits: int = SPLITS) -> dict:
    """Inception Score of generated images, with the conventions that produced it."""
    mean, std, used = inception_score_from_logits(generated.logits, splits)
    return {
        "metric": "is",
        "value": mean,
        "std": std,
        "n": len(generated.logits),
        "conventions": {
            **generated.conventions,
            "splits": used,
            "splits_requested": splits,
            "split_order": "contiguous, in input order (np.array_split)",
            "std": "population std over splits",
        },
    }
