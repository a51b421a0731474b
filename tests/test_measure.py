"""Peak memory is per measured block, so runs made one after another in a process don't inherit a peak."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import CPU

from benchmark.runs.measure import measured



#: Two measured blocks, 400 MiB touched then 16 numbers, in a process of their own.
TWO_BLOCKS = """
import json, torch
from benchmark.runs.measure import measured
with measured(torch.device("cpu")) as big:
    block = torch.ones(400 * 2**20 // 4)
    block += 1
del block
with measured(torch.device("cpu")) as small:
    torch.ones(16)
print(json.dumps([big.peak_memory_mib, small.peak_memory_mib, small.memory_kind]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the peak RSS resets on Linux only")
def test_the_cpu_peak_is_reset_before_each_block():
    """In a fresh process: in a test worker that earlier tests have grown, the allocator may hand the 400 MiB out of
    pages it already holds, so the resident size never rises (CI once read 2849 MiB for both blocks)."""
    done = subprocess.run([sys.executable, "-c", TWO_BLOCKS], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    big, small, kind = json.loads(done.stdout.splitlines()[-1])
    assert big - small > 300, (big, small)
    assert kind == "process peak RSS (CPU), reset per sample"


def test_seconds_are_measured():
    with measured(CPU) as measurement:
        torch.randn(256, 256) @ torch.randn(256, 256)
    assert measurement.seconds > 0 and measurement.peak_memory_mib > 0
