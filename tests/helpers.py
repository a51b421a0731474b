"""Small helpers several test modules share (no tests in here)."""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch

#: The device every CPU test runs on.
CPU = torch.device("cpu")


@contextmanager
def one_thread():
    """Two shared cores: one thread is several times faster than two fighting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_sampler(name: str, settings, profile: str = "tiny", device=CPU, paths=None, model: str = "sd21"):
    """A registered method's sampler on base ``model``, loaded as a run loads it (``Method.load`` with a
    ``LoadContext``)."""
    from baselines.models import WeightPaths
    from baselines.registry import LoadContext, get_method

    method = get_method(name)
    return method.load(method, LoadContext(profile, settings, device, paths if paths is not None else WeightPaths(),
                                           model))


def read_json(path):
    import json

    return json.loads(path.read_text())


def fixture_weight(index: int, key: str, shape) -> torch.Tensor:
    """A reference fixture's weights (tests/fixtures/README): a sine hash of the element's position and the
    key's index, scaled by fan-in, no random generator, so that any torch rebuilds them and only the keys are
    stored."""
    n = math.prod(shape)
    x = torch.arange(1, n + 1, dtype=torch.float64)
    u = torch.frac(torch.sin(x * 12.9898 + index * 78.233) * 43758.5453)
    if key.endswith("weight") and len(shape) >= 2:
        t = u * math.sqrt(3 / math.prod(shape[1:]))
    elif key.endswith("weight"):
        t = 1 + 0.1 * u
    else:
        t = 0.1 * u
    return t.reshape(shape).float()


def fixture_image(index: int, height: int, width: int):
    """A reference fixture's RGB test image (uint8, height x width x 3): smooth waves, no random generator."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [np.sin(x / (7 + 3 * index + c) + y / (11 + c) + index) * np.cos(y / (5 + 2 * c + index))
                for c in range(3)]
    return np.clip(127.5 + 127.5 * np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
