"""Small helpers several test modules share (no tests in here)."""

from __future__ import annotations

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
