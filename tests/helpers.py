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
