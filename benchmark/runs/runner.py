"""The resumable per-sample loop shared by every method.

A job says what one sample is; the runner times it, saves its outputs and record under
``out/samples/`` as soon as it is done, skips samples already on disk when a run is
resumed, and writes ``results.json`` from all records at the end. A run directory is bound
to its parameters: resuming with different ones is refused rather than mixed. Outputs are
tensors (saved as ``.npy``) or images (saved as ``.png``), written atomically before the
record, so a sample with a record is complete.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Protocol, Union

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from benchmark.runs.measure import measured
from benchmark.runs.records import environment, read_json, write_array, write_atomic, write_json

Output = Union[torch.Tensor, Image.Image]


class Job(Protocol):
    device: torch.device

    def parameters(self) -> dict:
        """Everything that determines the outputs; stored in ``run.json``."""

    def warm_up(self) -> None:
        """Load models and run once untimed, so that sample timings exclude start-up."""

    def run_sample(self, index: int) -> tuple[dict[str, Output], dict]:
        """Produce sample ``index``: arrays or images to save, and the sample's record."""

    def summarise(self, records: list[dict], out: Path) -> dict:
        """Figures over all samples, added to ``results.json``."""


class RunMismatchError(RuntimeError):
    pass


def derived_seed(seed: int, index: int, stream: str) -> int:
    """An independent seed per (run seed, sample, random stream), stable across runs."""
    words = [seed, index] + [ord(c) for c in stream]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)


def sample_record_path(out: Path, index: int) -> Path:
    return out / "samples" / f"{index:05d}.json"


def save_output(out: Path, index: int, name: str, value: Output):
    """``samples/NNNNN.<name>.png`` for an image, ``.npy`` for a tensor; atomically."""
    stem = out / "samples" / f"{index:05d}.{name}"
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        write_atomic(stem.with_name(stem.name + ".png"), buffer.getvalue())
    else:
        write_array(stem.with_name(stem.name + ".npy"), value)


def run(job: Job, count: int, out: Path, progress: bool = True) -> dict:
    """Run samples ``0 .. count - 1`` of ``job`` into ``out``; returns the results dict."""
    out = Path(out)
    parameters = job.parameters()
    run_file = out / "run.json"
    if run_file.exists() and read_json(run_file) != parameters:
        raise RunMismatchError(
            f"{out} holds a run with other parameters ({run_file}); "
            "choose another --out or delete that directory")
    write_json(run_file, parameters)

    todo = [i for i in range(count) if not sample_record_path(out, i).exists()]
    if todo:
        job.warm_up()
    for index in tqdm(todo, desc=f"{parameters['method']} ({parameters['profile']})",
                      disable=not progress, unit="sample"):
        with measured(job.device) as measurement:
            outputs, record = job.run_sample(index)
        for name, value in outputs.items():
            save_output(out, index, name, value)
        record.update(index=index, seconds=measurement.seconds,
                      peak_memory_mib=measurement.peak_memory_mib,
                      peak_reserved_mib=measurement.peak_reserved_mib,
                      memory_kind=measurement.memory_kind)
        write_json(sample_record_path(out, index), record)

    records = [read_json(sample_record_path(out, i)) for i in range(count)]
    seconds = [r["seconds"] for r in records]
    results = {
        **parameters,
        "samples": count,
        "resumed_samples": count - len(todo),
        "seconds_per_sample": float(np.mean(seconds)),
        "seconds_per_sample_std": float(np.std(seconds)),
        "seconds_per_sample_min": float(np.min(seconds)),
        "peak_memory_mib": max(r["peak_memory_mib"] for r in records),
        "memory_kind": records[0]["memory_kind"],
        "environment": environment(job.device),
        **job.summarise(records, out),
    }
    write_json(out / "results.json", results)
    return results
