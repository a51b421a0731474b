"""Eq. 1 bucketing and the batch sampler: every batch from one bucket, every item once per epoch."""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from datasets_build.images import fit
from datasets_build.sizes import Size, cover_box, nearest

from .config import TrainingError
from .data import Example, TrainingData


def assign_buckets(examples: Sequence[Example], sizes: Sequence[Size]) -> np.ndarray:
    """Eq. 1: each example's bucket index (nearest ratio H/W; ties to the first listed)."""
    ratios = np.array([e.height / e.width for e in examples], dtype=float)
    return nearest(ratios, tuple(sizes))


def cover_resize(image: Image.Image, size: Size) -> Image.Image:
    """Scale the short side to cover ``size`` and centre-crop (nothing distorted)."""
    return fit(image, size, cover_box(image.width, image.height, size))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image → float tensor [3, H, W] in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


class BucketDataset(torch.utils.data.Dataset):
    """Examples resized to their bucket: item i is (pixels [3, H, W] in [-1, 1], caption)."""

    def __init__(self, data: TrainingData, sizes: Sequence[Size]):
        self.examples = data.examples
        self.sizes = tuple(sizes)
        self.buckets = assign_buckets(self.examples, self.sizes)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        example = self.examples[i]
        return to_tensor(cover_resize(example.load(), self.sizes[self.buckets[i]])), example.caption


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of indices that all share one bucket; every item once per epoch.

    The order of an epoch is a pure function of (seed, epoch): within each bucket the
    items are shuffled and cut into batches of ``batch_size`` (the last one of a bucket
    may be smaller unless ``drop_last``), then all batches are shuffled together.
    With ``num_replicas`` > 1 (several processes), the epoch's batches are dealt out in
    turn (padded by repeating its first batches so every process gets as many).

    Iterating yields the batches of :attr:`epoch` from position :attr:`start` (in
    batches of this process); :meth:`state_dict` / :meth:`load_state_dict` carry those
    two numbers, so a resumed run continues where it stopped.
    """

    def __init__(self, buckets: Sequence[int], batch_size: int, seed: int = 0, *, drop_last: bool = False,
                 num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise TrainingError(f"batch size must be at least 1, not {batch_size}")
        if not 0 <= rank < num_replicas:
            raise TrainingError(f"rank {rank} is not in [0, {num_replicas})")
        self.buckets = np.asarray(buckets, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0
        if len(self.global_batches(0)) == 0:
            raise TrainingError("no batch can be made (every bucket has fewer items than the batch size?)")

    def global_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch`` for all processes, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for bucket in np.unique(self.buckets):
            items = np.flatnonzero(self.buckets == bucket)
            items = items[rng.permutation(len(items))]
            for i in range(0, len(items), self.batch_size):
                chunk = items[i : i + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append([int(x) for x in chunk])
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of ``epoch``."""
        batches = self.global_batches(epoch)
        total = math.ceil(len(batches) / self.num_replicas) * self.num_replicas
        padded = batches + batches[: total - len(batches)]
        return padded[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return len(self.batches(self.epoch)) - self.start

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.start :]

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise TrainingError(f"sampler state is for seed {state['seed']}, not {self.seed}")
        self.set_epoch(state["epoch"], state["start"])
