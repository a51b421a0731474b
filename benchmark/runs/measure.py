"""Wall time and peak memory of one unit of work, measured the same way on every device.

Seconds exclude model loading (the caller warms up first) and include device
synchronisation. Peak memory is ``torch.cuda.max_memory_allocated``/``reserved`` after a
reset on CUDA; on a CPU it is the process's peak resident set size, reset before each
unit on Linux (``/proc/self/clear_refs``), so that runs made one after another in one
process (``tables``, the regression suites) each get their own peak; elsewhere the peak
since the process started, an upper bound, and the record says which.

A memory budget (:class:`MemoryBudget`, ``--memory-budget 32GiB``) is a limit the process
really cannot exceed while a sample runs (:func:`memory_budget`): on CUDA the caching
allocator's ``set_per_process_memory_fraction`` (budget / device total), so a larger GPU
behaves like the paper's 32 GB card; on a CPU the soft ``RLIMIT_AS`` of the process, set to
the address space at sample start plus the budget minus what the process holds
(:func:`held_bytes`: the resident size, and what glibc's heaps hold free after a trim, which the
allocator reuses without mapping more and which would otherwise be budget on top of the budget),
so that no more than the budget's worth of memory can be used (torch then raises its "can't allocate memory"
RuntimeError, Python a MemoryError). :func:`baselines.out_of_memory.is_out_of_memory` tells those errors,
and CUDA's ``OutOfMemoryError``, from every other.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import re
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


def synchronize(device: torch.device):
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


def status_bytes(key: str) -> Optional[int]:
    """A size from ``/proc/self/status`` (VmRSS, VmSize, VmHWM ...), None where there is none."""
    try:
        for line in (PROC / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 2**10  # kB
    except OSError:
        pass
    return None


def _process_peak_rss_mib() -> float:
    peak = status_bytes("VmHWM")  # VmHWM follows clear_refs; ru_maxrss does not
    if peak is not None:
        return peak / 2**20
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
    synchronize(device)
    start = time.perf_counter()
    try:
        yield result
    except BaseException:  # the block failed (out of memory): the time and peak until then
        _fill(result, device, start, reset)
        raise
    synchronize(device)
    _fill(result, device, start, reset)


def _fill(result: Measurement, device: torch.device, start: float, reset: bool):
    result.seconds = time.perf_counter() - start
    if device.type == "cuda":
        result.peak_memory_mib = torch.cuda.max_memory_allocated(device) / 2**20
        result.peak_reserved_mib = torch.cuda.max_memory_reserved(device) / 2**20
        result.memory_kind = "cuda max_memory_allocated"
    else:
        result.peak_memory_mib = _process_peak_rss_mib()
        result.memory_kind = ("process peak RSS (CPU), reset per sample" if reset
                              else "process peak RSS (CPU) since the process started")


# --- memory budget -------------------------------------------------------------------------

_UNITS = {"b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNIT_NAMES = {"b": "B", "kib": "KiB", "mib": "MiB", "gib": "GiB", "tib": "TiB",
               "kb": "kB", "mb": "MB", "gb": "GB", "tb": "TB"}
CPU_ENFORCEMENT = "RLIMIT_AS: address space at sample start + budget - (resident + free heap)"
CUDA_ENFORCEMENT = "cuda set_per_process_memory_fraction (budget / device total)"


class MemoryBudgetError(ValueError):
    """A memory budget that cannot be read or cannot be enforced; the message says why."""


class OutOfMemoryBudget(MemoryError):
    """The budget is already below what the process holds when the sample starts."""


def parse_memory_size(text: str) -> int:
    """Bytes of ``32GiB``, ``512MiB``, ``1.5GiB``, ``32GB`` (binary KiB..TiB, decimal kB..TB, B)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]+)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise MemoryBudgetError(
            f"memory budget {text!r} is not a size with a unit, e.g. 32GiB, 512MiB or 32GB "
            f"(units: {', '.join(_UNIT_NAMES.values())})")
    value = round(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 2**20:
        raise MemoryBudgetError(f"memory budget {text!r} is below 1 MiB; give e.g. 512MiB or 32GiB")
    return value


def format_memory_size(size: int) -> str:
    """The shortest exact spelling: 1073741824 -> ``1GiB``, 1610612736 -> ``1536MiB``, 32e9 -> ``32GB``."""
    for unit in ("tib", "gib", "mib", "tb", "gb", "mb", "kib", "kb"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{_UNIT_NAMES[unit]}"
    return f"{size}B"


@dataclass(frozen=True)
class MemoryBudget:
    bytes: int

    @classmethod
    def parse(cls, text: str) -> "MemoryBudget":
        return cls(parse_memory_size(text))

    @property
    def text(self) -> str:
        return format_memory_size(self.bytes)

    @staticmethod
    def enforced_by(device: torch.device) -> str:
        return CUDA_ENFORCEMENT if device.type == "cuda" else CPU_ENFORCEMENT

    def as_record(self, device: torch.device) -> dict:
        return {"bytes": self.bytes, "text": self.text, "enforced_by": self.enforced_by(device)}


def check_budget(budget: Optional[MemoryBudget], device: torch.device):
    """Refuse, before anything runs, a budget that cannot be enforced on ``device``."""
    if budget is None:
        return
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        if budget.bytes > total:
            raise MemoryBudgetError(
                f"memory budget {budget.text} is above the {format_memory_size(total)} "
                f"({total / 2**30:.1f} GiB) of {torch.cuda.get_device_name(device)}; "
                "give at most the device's memory")
    elif device.type == "cpu":
        if not (PROC / "status").is_file():
            raise MemoryBudgetError("a CPU memory budget needs Linux (/proc/self/status and "
                                    "RLIMIT_AS); run without --memory-budget here")
    else:
        raise MemoryBudgetError(f"no way to enforce a memory budget on device {device.type!r}; "
                                "use cpu or cuda, or run without --memory-budget")


@contextmanager
def memory_budget(budget: Optional[MemoryBudget], device: torch.device):
    """Hold the process to ``budget`` during the block (see the module docstring); restore after. On a CPU the
    trim inside :func:`held_bytes` falls in the sample's seconds: 0.3 ms on a lean heap, 50 ms once after a
    gigabyte was freed inside it (measured here)."""
    if budget is None:
        yield
        return
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, budget.bytes / total), device)
        try:
            yield
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
        return
    check_budget(budget, device)
    held, mapped = held_bytes(), status_bytes("VmSize")
    if held is None or mapped is None:
        raise MemoryBudgetError("/proc/self/status has no VmRSS or VmSize: a CPU memory budget cannot be enforced")
    if budget.bytes <= held:
        raise OutOfMemoryBudget(
            f"the memory budget {budget.text} is below the {held / 2**20:.0f} MiB the process "
            "already holds at sample start")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + budget.bytes - held
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def release_memory(device: torch.device):
    """After an out-of-memory sample: collect its garbage and give freed memory back."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    else:
        _trimmed_heap_free_bytes()  # glibc keeps freed small blocks; hand them back so the next sample starts lean


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                     "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def held_bytes() -> Optional[int]:
    """What a CPU budget counts as held: the resident size plus what glibc's heaps hold free after a
    trim (no longer resident, but reused without mapping more); None without ``/proc/self/status``."""
    free = _trimmed_heap_free_bytes()
    resident = status_bytes("VmRSS")
    return None if resident is None else resident + free


@functools.lru_cache(maxsize=None)
def _glibc() -> Optional[ctypes.CDLL]:
    """The C library, loaded once (a budget trims at every sample's start); None where it is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018  (glibc's, looked up now: a C library without it is not used)
    except (OSError, AttributeError):
        return None
    if hasattr(libc, "mallinfo2"):  # glibc >= 2.33
        libc.mallinfo2.restype = _MallInfo2
    return libc


def _trimmed_heap_free_bytes() -> int:
    """Hand glibc's free heap pages back to the system, then the bytes its heaps still hold free
    (``mallinfo2().fordblks``, all arenas); 0 where the C library is not glibc ≥ 2.33."""
    libc = _glibc()
    if libc is None:
        return 0
    libc.malloc_trim(0)
    return int(libc.mallinfo2().fordblks) if hasattr(libc, "mallinfo2") else 0
