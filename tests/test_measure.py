"""Peak memory is per measured block, so runs made one after another in a process don't inherit a peak."""

import sys

import pytest
import torch

from helpers import CPU

from benchmark.runs.measure import measured



@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the peak RSS resets on Linux only")
def test_the_cpu_peak_is_reset_before_each_block():
    with measured(CPU) as big:
        block = torch.ones(400 * 2**20 // 4)  # 400 MiB, touched
        block += 1
    del block
    with measured(CPU) as small:
        torch.ones(16)
    assert big.peak_memory_mib - small.peak_memory_mib > 300
    assert small.memory_kind == "process peak RSS (CPU), reset per sample"


def test_seconds_are_measured():
    with measured(CPU) as measurement:
        torch.randn(256, 256) @ torch.randn(256, 256)
    assert measurement.seconds > 0 and measurement.peak_memory_mib > 0
