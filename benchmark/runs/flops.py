"""FLOPs of one tiled denoiser step and the device's peak: the FLOP utilisation of stage II.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one real step
(every tile, every UNet call: convolutions, matrix products and attention as torch counts
them, 2 per multiply-add); seconds are the median of timed steps after warm-up, synchronised.
Utilisation = FLOPs ÷ seconds ÷ the device's dense fp16 tensor peak. The peak comes from
the vendor's data sheet (:data:`DENSE_FP16_PEAK`) and, beside it, from a large matrix
product measured on the device (:func:`matmul_flops_per_second`), which no UNet can beat.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

#: Dense (no sparsity) fp16/bf16 tensor-core peak in FLOP/s, by device name. NVIDIA H200 and
#: H100 SXM data sheets: 1,979 TFLOP/s "with sparsity", half of it dense (989 TFLOP/s).
DENSE_FP16_PEAK = {"H200": 989e12, "H100 80GB HBM3": 989e12}
PEAK_SOURCE = ("NVIDIA H200 Tensor Core GPU data sheet (nvidia.com/en-us/data-center/h200): "
               "FP16/BF16 tensor core 1,979 TFLOPS with sparsity, 989 dense")


def dense_fp16_peak(device: torch.device) -> Optional[float]:
    """The data sheet's dense fp16 peak of ``device``, None where this table does not know it."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in DENSE_FP16_PEAK.items() if key in name), None)


def count_flops(work: Callable[[], object]) -> int:
    """FLOPs of one call of ``work`` (run once under the counter)."""
    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops()


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(work: Callable[[], object], device: torch.device, repeats: int = 5, warm_up: int = 2) -> float:
    """Median wall seconds of ``work`` after ``warm_up`` untimed calls, synchronised around each."""
    for _ in range(warm_up):
        work()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        work()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_flops_per_second(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """FLOP/s of an n×n×n matrix product on ``device`` (random operands): the attainable peak."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn((n, n), device=device, dtype=dtype, generator=generator)
    b = torch.randn((n, n), device=device, dtype=dtype, generator=generator)
    return 2 * n ** 3 / seconds_per_call(lambda: a @ b, device, repeats=10, warm_up=3)
