"""Wall time and peak memory of one unit of work, measured the same way on every device.

Seconds exclude model loading (the caller warms up first) and include device
synchronisation. Peak memory is ``torch.cuda.max_memory_allocated``/``reserved`` after a
reset on CUDA; on a CPU it is the process's peak resident set size, reset before each
unit on Linux (``/proc/self/clear_refs``), so that runs made one after another in one
process (``tables``, the regression suites) each get their own peak; elsewhere the peak
since the process started, an upper bound, and the record says which.
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_memory_mib: float = 0.0
    peak_reserved_mib: Optional[float] = None
    memory_kind: str = ""


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


PROC = Path("/proc/self")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS of this process (Linux ≥ 4.0); False where that is not possible."""
    try:
        (PROC / "clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _process_peak_rss_mib() -> float:
    try:  # VmHWM follows clear_refs; ru_maxrss does not
        for line in (PROC / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


@contextmanager
def measured(device: torch.device):
    """Measure the block: ``with measured(dev) as m: ...; m.seconds, m.peak_memory_mib``."""
    result = Measurement()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        reset = True
    else:
        reset = _reset_peak_rss()
    _sync(device)
    start = time.perf_counter()
    yield result
    _sync(device)
    result.seconds = time.perf_counter() - start
    if device.type == "cuda":
        result.peak_memory_mib = torch.cuda.max_memory_allocated(device) / 2**20
        result.peak_reserved_mib = torch.cuda.max_memory_reserved(device) / 2**20
        result.memory_kind = "cuda max_memory_allocated"
    else:
        result.peak_memory_mib = _process_peak_rss_mib()
        result.memory_kind = ("process peak RSS (CPU), reset per sample" if reset
                              else "process peak RSS (CPU) since the process started")
