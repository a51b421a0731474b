"""The resumable per-sample loop shared by every method.

A job says what one sample is; the runner times it, saves its outputs and record under
``out/samples/`` as soon as it is done, skips samples already on disk when a run is
resumed, and writes ``results.json`` from all records at the end. A run directory is bound
to its parameters: resuming with different ones is refused rather than mixed. Outputs are
tensors (saved as ``.npy``) or images (saved as ``.png``), written atomically before the
record, so a sample with a record is complete.

Out of memory is a result: a sample that runs out of memory (CUDA's OutOfMemoryError, a
MemoryError, torch's CPU allocator failing, or the run's memory budget, see
:mod:`benchmark.runs.measure`) gets a record with ``"status": "oom"``, its size, the time
until it failed, the peak memory reached and the error's first line; finished samples have
``"status": "ok"``. The run goes on with the next sample, and a resumed run keeps the OOM
record like any other (it is measured, not redone). ``results.json`` counts both; its means
are over finished samples, None when there is none.

Under ``accelerate launch`` the run is sharded (:mod:`benchmark.runs.shard`): rank 0 alone
checks the directory against the parameters, writes ``run.json`` and lists the samples left,
then every process runs its share of them (i ≡ rank mod world) and rank 0, once all are
done, writes ``results.json``. Records are the same whichever process made them, so a
resumed run skips finished samples whatever the number of processes before.
"""

from __future__ import annotations

import io
import traceback
from pathlib import Path
from typing import Optional, Protocol, Union

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from benchmark.runs.measure import (MemoryBudget, check_budget, is_out_of_memory, measured, memory_budget,
                                    release_memory)
from benchmark.runs.records import environment, read_json, write_array, write_atomic, write_json
from benchmark.runs.shard import Shard, current

Output = Union[torch.Tensor, Image.Image]


class Job(Protocol):
    device: torch.device

    def parameters(self) -> dict:
        """Everything that determines the outputs; stored in ``run.json``."""

    def warm_up(self) -> None:
        """Load models and run once untimed, so that sample timings exclude start-up."""

    def sample_size(self, index: int) -> tuple[int, int]:
        """The output size (H, W) of sample ``index``, known before it runs (for an OOM record)."""

    def run_sample(self, index: int) -> tuple[dict[str, Output], dict]:
        """Produce sample ``index``: arrays or images to save, and the sample's record."""

    def summarise(self, records: list[dict], out: Path) -> dict:
        """Figures over all samples (finished and out of memory, see :func:`finished`), added to ``results.json``."""


class RunMismatchError(RuntimeError):
    pass


class SampleFailed(RuntimeError):
    """A sample a job could not make for a reason it names (a method's image of the wrong size): recorded
    with ``"status": "failed"`` and the reason, and the run goes on."""


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


def finished(record: dict) -> bool:
    """Whether a sample record is a finished sample (records made before OOM records count as finished)."""
    return record.get("status", "ok") == "ok"


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else 'out of memory'}"


def _mean(values: list) -> Optional[float]:
    return float(np.mean(values)) if values else None


def _claim(out: Path, parameters: dict, count: int):
    """Rank 0's look at the directory: why it cannot hold this run (or None, then run.json is
    written), the samples left, and the parameters every other process must have too."""
    run_file = out / "run.json"
    if run_file.exists():
        stored = read_json(run_file)
        stored.setdefault("memory_budget", None)  # runs made before budgets existed had none
        if "task" in parameters:  # runs made before the method registry: the task follows from the method
            stored.setdefault("task", parameters["task"])
        if stored != parameters:
            return (f"{out} holds a run with other parameters ({run_file}); "
                    "choose another --out or delete that directory"), [], parameters
    write_json(run_file, parameters)
    return None, [i for i in range(count) if not sample_record_path(out, i).exists()], parameters


def run(job: Job, count: int, out: Path, progress: Optional[bool] = None,
        budget: Optional[MemoryBudget] = None, shard: Optional[Shard] = None) -> dict:
    """Run samples ``0 .. count - 1`` of ``job`` into ``out``; returns the results dict.

    ``budget`` holds each sample to that much memory (``measure.memory_budget``); it is one
    of the run's parameters. ``shard`` (default: :func:`shard.current`) says which of the
    samples this process runs."""
    out = Path(out)
    shard = shard or current(job.device)
    check_budget(budget, job.device)
    budget_record = None if budget is None else budget.as_record(job.device)
    parameters = {**job.parameters(), "memory_budget": budget_record}
    problem, todo, leading = shard.share(_claim(out, parameters, count) if shard.main else None)
    if problem is None and parameters != leading:
        differing = sorted(k for k in parameters.keys() | leading.keys() if parameters.get(k) != leading.get(k))
        problem = (f"rank {shard.rank} runs {out} with other parameters than rank 0 ({', '.join(differing)}); "
                   "give every process the same command and code")
    problems = [p for p in shard.gather([problem]) if p]
    if problems:
        raise RunMismatchError(problems[0])

    mine = shard.mine(todo)
    if mine:
        job.warm_up()
    rank = f" [rank {shard.rank} of {shard.world}]" if shard.sharded else ""
    for index in tqdm(mine, desc=f"{parameters['method']} ({parameters['profile']}){rank}",
                      disable=None if progress is None else not progress, unit="sample", position=shard.rank if shard.sharded else None):
        size = job.sample_size(index)
        error_line = status = None
        try:
            with measured(job.device) as measurement, memory_budget(budget, job.device):
                outputs, record = job.run_sample(index)
        except Exception as error:
            if not (is_out_of_memory(error) or isinstance(error, SampleFailed)):
                raise
            error_line, status = _one_line(error), "failed" if isinstance(error, SampleFailed) else "oom"
            traceback.clear_frames(error.__traceback__)  # the failed sample's tensors live in those frames
            error.__traceback__ = None
            del error
            outputs, record = {}, {"size": list(size)}
            release_memory(job.device)
        for name, value in outputs.items():
            save_output(out, index, name, value)
        record.update(index=index, status=status or "ok", seconds=measurement.seconds,
                      peak_memory_mib=measurement.peak_memory_mib,
                      peak_reserved_mib=measurement.peak_reserved_mib,
                      memory_kind=measurement.memory_kind, memory_budget=budget_record,
                      rank=shard.rank, world_size=shard.world)  # which process of how many made it
        if error_line is not None:
            record["error"] = error_line
        write_json(sample_record_path(out, index), record)
        del outputs, record

    shard.barrier("every sample written")
    return shard.share(_results(job, count, out, parameters, todo, budget, shard) if shard.main else None)


def _results(job: Job, count: int, out: Path, parameters: dict, todo: list[int],
             budget: Optional[MemoryBudget], shard: Shard) -> dict:
    """``results.json`` from every sample's record on disk, written atomically."""
    records = [read_json(sample_record_path(out, i)) for i in range(count)]
    done = [r for r in records if finished(r)]
    seconds = [r["seconds"] for r in done]
    results = {
        **parameters,
        "samples": count,
        "finished_samples": len(done),
        "oom_samples": sum(r.get("status") == "oom" for r in records),
        "failed_samples": sum(r.get("status") == "failed" for r in records),
        "resumed_samples": count - len(todo),
        "seconds_per_sample": _mean(seconds),
        "seconds_per_sample_std": float(np.std(seconds)) if seconds else None,
        "seconds_per_sample_min": float(np.min(seconds)) if seconds else None,
        "peak_memory_mib": max((r["peak_memory_mib"] for r in done), default=None),
        "oom_peak_memory_mib": max((r["peak_memory_mib"] for r in records if r.get("status") == "oom"), default=None),
        "memory_kind": records[0]["memory_kind"],
        "environment": environment(job.device),
        "processes": {"world_size": shard.world,
                      "ranks": sorted({r.get("rank", 0) for r in records}),
                      "note": "each sample's record says the rank that made it (resumed runs: of its own launch)"},
        **job.summarise(records, out),
    }
    if not done:
        results["note"] = (f"every sample ({count}) ran out of memory" + (" or failed" if results["failed_samples"] else "")
                           + (f" under the {budget.text} budget" if budget else "")
                           + ": seconds, calls, peak memory and scores are None")
    write_json(out / "results.json", results)
    return results
