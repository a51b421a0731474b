"""What counts as running out of memory: one definition for the runner (an OOM sample is a result), the
ceiling search (a trial that died of it) and the tiled VAE (a statistics batch halved until it fits)."""

from __future__ import annotations

import torch

#: Lower-case fragments of torch's allocator errors (CPU: "can't allocate memory", CUDA: "out of memory").
OOM_MESSAGES = ("can't allocate memory", "cannot allocate memory", "out of memory")


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, MemoryError, or torch's CPU allocator failing."""
    cuda_oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if isinstance(error, MemoryError) or (cuda_oom is not None and isinstance(error, cuda_oom)):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error).lower() for m in OOM_MESSAGES)
