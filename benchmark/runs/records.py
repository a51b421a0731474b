"""Results on disk: atomic writes, and the provenance every number carries.

Every file is written to a temporary name and renamed, so an interrupted run leaves either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from baselines.base_models import DEFAULT_MODEL

_PACKAGES = ("torch", "diffusers", "transformers", "peft", "open_clip_torch", "clean-fid",
             "torchmetrics", "lpips", "scikit-image", "numpy")


def model_of(record: dict) -> str:
    """The base model of a run's results, sample or ceiling record; those made before models were entries are
    SD 2.1's."""
    return record.get("model") or DEFAULT_MODEL


def write_atomic(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json(path: Path, value):
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def write_array(path: Path, array: torch.Tensor):
    buffer = io.BytesIO()
    np.save(buffer, array.detach().cpu().numpy())
    write_atomic(path, buffer.getvalue())


def read_array(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(path))


def git_commit() -> dict:
    """The commit of the checkout the code runs from, and whether it had local changes."""
    root = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"{torch.get_num_threads()} torch threads)"


def environment(device: torch.device) -> dict:
    """Versions, device and commit: what a reader needs to know where a number came from."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": platform.python_version(), "packages": versions,
            "device": device_name(device), "device_type": device.type, "git": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **({"gpu": gpu_details(device)} if device.type == "cuda" else {})}


def gpu_details(device: torch.device) -> dict:
    """A CUDA device's name, driver and power limit as NVML reports them (a GPU's speed depends on its power
    cap); without NVML (``pip install nvidia-ml-py``), the name alone and why."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    details = {"name": torch.cuda.get_device_name(index), "driver": None, "power_limit_w": None}
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        driver = pynvml.nvmlSystemGetDriverVersion()
        details.update(driver=driver.decode() if isinstance(driver, bytes) else driver,
                       power_limit_w=pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000)
    except Exception as error:  # no NVML here: the record says so
        details["nvml"] = f"not available ({type(error).__name__})"
    return details


def recorded_inputs(result: dict) -> dict:
    """A run's ``inputs`` record: the set its samples came from and what the options replaced (``{}`` for runs
    made before it was recorded, whose ``inputs`` named the task)."""
    inputs = result.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def on_set_items(result: dict) -> bool:
    """Whether a run's samples are its data set's items as the set has them, captions and sizes: the runs
    the paper's tables and "All methods" compare (a run with ``--prompt`` or ``--size`` is not)."""
    return bool((result.get("dataset") or {}).get("name")) and not recorded_inputs(result).get("replaced")
