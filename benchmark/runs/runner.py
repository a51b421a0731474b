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
record like any other (it is measured, not redone).

A sample whose method raises anything else (a bug, a plugin's error, an image of the wrong
size) is a failure, not a crash: its record says ``"status": "failed"``, the method, the
error's type and message and the traceback's last lines, and the run goes on. A failure holds
no measurement, so a resumed run retries failed samples (and counts them in
``retried_samples``); an OOM is the measurement and is kept. A warm-up that raises is noted in
``results.json`` (``warm_up_error``) and the samples run all the same, each failing on its own
record if the method cannot run at all. ``results.json`` counts finished, out-of-memory and
failed samples; its means are over finished samples, None when there is none. What a method
notes while making a sample (:class:`baselines.notes.SampleNote`: a VAE decode that went on a
few windows at a time, so the same image took longer) goes into that sample's ``notes``.

Under ``accelerate launch`` the run is sharded (:mod:`benchmark.runs.shard`): rank 0 alone
checks the directory against the parameters, writes ``run.json`` and lists the samples left,
then every process runs its share of them (i ≡ rank mod world) and rank 0, once all are
done, writes ``results.json``. Records are the same whichever process made them, so a
resumed run skips finished samples whatever the number of processes before.
"""

from __future__ import annotations

import io
import sys
import traceback
from pathlib import Path
from typing import Optional, Protocol, Union

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from baselines.base_models import DEFAULT_MODEL
from baselines.notes import sample_notes
from baselines.out_of_memory import is_out_of_memory
from benchmark.runs.measure import MemoryBudget, check_budget, measured, memory_budget, release_memory
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


#: ``python -m benchmark run``'s exit status for a run that finished with failed samples (0: every sample
#: finished or ran out of memory, a measured result; 2: bad input, refused before anything ran).
PARTIAL_EXIT = 3
TRACEBACK_LINES = 12  # of a failed sample's traceback, kept in its record: enough to find the line that raised


def _failure(error: Exception, method: str) -> dict:
    """What a failed sample's record says of its error (its frames are formatted before they are cleared)."""
    record = {"error": _one_line(error), "error_type": type(error).__name__, "failed_method": method}
    if not isinstance(error, SampleFailed):  # the suite's own reason needs no traceback
        lines = "".join(traceback.format_exception(type(error), error, error.__traceback__)).splitlines()
        record["traceback"] = lines[-TRACEBACK_LINES:]
    return record


def failed_again(out: Path, index: int) -> bool:
    """Whether sample ``index``'s record (there is one) is of a failure (retried on resume)."""
    return read_json(sample_record_path(out, index)).get("status") == "failed"


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
    written), the samples left, the parameters every other process must have too, and how many of
    the samples left failed before (retried now)."""
    run_file = out / "run.json"
    if run_file.exists():
        stored = read_json(run_file)
        stored.setdefault("memory_budget", None)  # runs made before budgets existed had none
        if "task" in parameters:  # runs made before the method registry: the task follows from the method
            stored.setdefault("task", parameters["task"])
        if "model" in parameters:  # runs made before base models were entries ran on the default one
            stored.setdefault("model", DEFAULT_MODEL)
        if stored != parameters:
            return (f"{out} holds a run with other parameters ({run_file}); "
                    "choose another --out or delete that directory"), [], parameters, 0
    write_json(run_file, parameters)
    made = {i for i in range(count) if sample_record_path(out, i).exists()}
    failed = {i for i in made if failed_again(out, i)}  # each record read once
    todo = [i for i in range(count) if i in failed or i not in made]
    return None, todo, parameters, len(failed)


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
    problem, todo, leading, retried = shard.share(_claim(out, parameters, count) if shard.main else None)
    if problem is None and parameters != leading:
        differing = sorted(k for k in parameters.keys() | leading.keys() if parameters.get(k) != leading.get(k))
        problem = (f"rank {shard.rank} runs {out} with other parameters than rank 0 ({', '.join(differing)}); "
                   "give every process the same command and code")
    problems = [p for p in shard.gather([problem]) if p]
    if problems:
        raise RunMismatchError(problems[0])

    mine = shard.mine(todo)
    warm_up_error = _warm_up(job) if mine else None
    rank = f" [rank {shard.rank} of {shard.world}]" if shard.sharded else ""
    for index in tqdm(mine, desc=f"{parameters['method']} ({parameters['profile']}){rank}",
                      disable=None if progress is None else not progress, unit="sample", position=shard.rank if shard.sharded else None):
        size = job.sample_size(index)
        failure = None
        try:
            with measured(job.device) as measurement, sample_notes() as notes, memory_budget(budget, job.device):
                outputs, record = job.run_sample(index)
        except Exception as error:
            failure = ({"error": _one_line(error), "status": "oom"} if is_out_of_memory(error)
                       else {**_failure(error, parameters["method"]), "status": "failed"})
            traceback.clear_frames(error.__traceback__)  # the failed sample's tensors live in those frames
            error.__traceback__ = None
            del error
            outputs, record = {}, {"size": list(size)}
            release_memory(job.device)
            if failure["status"] == "failed":
                tqdm.write(f"sample {index} ({size[0]}x{size[1]}) of {parameters['method']} failed: "
                           f"{failure['error']}; the run goes on (record: {sample_record_path(out, index)})",
                           file=sys.stderr)
        for name, value in outputs.items():
            save_output(out, index, name, value)
        record.update(index=index, status="ok", seconds=measurement.seconds,
                      peak_memory_mib=measurement.peak_memory_mib,
                      peak_reserved_mib=measurement.peak_reserved_mib,
                      memory_kind=measurement.memory_kind, memory_budget=budget_record,
                      rank=shard.rank, world_size=shard.world)  # which process of how many made it
        record.update(failure or {})
        if notes:
            record["notes"] = notes
        write_json(sample_record_path(out, index), record)
        del outputs, record

    shard.barrier("every sample written")
    return shard.share(_results(job, count, out, parameters, todo, budget, shard, retried, warm_up_error)
                       if shard.main else None)


def _warm_up(job: Job) -> Optional[str]:
    """Warm the job up; a warm-up that raises is noted (its line) rather than ending the run."""
    try:
        job.warm_up()
    except Exception as error:
        line = _one_line(error)
        traceback.clear_frames(error.__traceback__)
        tqdm.write(f"the warm-up failed ({line}); the samples run all the same", file=sys.stderr)
        return line
    return None


def _results(job: Job, count: int, out: Path, parameters: dict, todo: list[int],
             budget: Optional[MemoryBudget], shard: Shard, retried: int = 0,
             warm_up_error: Optional[str] = None) -> dict:
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
        "retried_samples": retried,
        "warm_up_error": warm_up_error,
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
        oom = results["oom_samples"]
        why = ", ".join(filter(None, [oom and f"{oom} ran out of memory" + (f" under the {budget.text} budget" if budget else ""),
                                      results["failed_samples"] and f"{results['failed_samples']} failed"]))
        results["note"] = f"no sample of {count} finished ({why}): seconds, calls, peak memory and scores are None"
    write_json(out / "results.json", results)
    return results
