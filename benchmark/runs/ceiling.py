"""The largest square side a method completes under a memory budget (docs/design.md, "Metrics": "max res.").

:func:`find_ceiling` is the search alone: the side doubles from ``min_side`` until a trial
runs out of memory (or ``max_side``, which caps it, completes), then bisection on multiples
of ``step`` between the last side that completed and the first that did not. It takes any
``trial(side) -> TrialResult``, so it is tested with a fake one.

:func:`search` runs it for real: each trial is ``python -m benchmark run`` in a fresh
subprocess (:func:`subprocess_trial`) at one step per stage (memory does not depend on the
step count) under ``--memory-budget``, so that one trial's out-of-memory cannot poison the
next; a subprocess that is killed (the kernel's OOM killer: -9) or dies of a memory error
counts as out of memory, with that reason. A trial whose method fails (its sample record
says ``failed``, or the process ends in another error) is no measurement of memory: it stops
the search like a time limit does, the ceiling is then a lower bound, and a later search
tries that side again. Every trial and the result are written atomically to
``<runs>/ceiling/<profile>/<method>-<budget>/ceiling.json`` as they come; the trials' run
directories sit beside it under ``trials/``. A second search reuses the trials on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from baselines.base_models import DEFAULT_MODEL, name_parts
from baselines.registry import PROMPTS, get_method
from baselines.out_of_memory import OOM_MESSAGES
from benchmark.runs.measure import MemoryBudget
from benchmark.runs.records import device_name, environment, read_json, write_json
from benchmark.runs.runner import PARTIAL_EXIT

STEP = 512
MIN_SIDE = 512
MAX_SIDE = 18432  # the paper's largest ASD output
STEPS = SR_STEPS = 1
NOTE = "one step per stage: memory does not depend on the step count"
PROMPT = "a lighthouse on a cliff at dusk, highly detailed"
FOLDER = "ceiling"
_REPO = Path(__file__).resolve().parents[2]
#: What must match for a ceiling.json's trials to be reused.
IDENTITY = ("kind", "method", "model", "profile", "budget", "device", "steps", "sr_steps", "step", "prompt")
CPU_TRIAL_TIMEOUT = 600.0  # s: the default time limit of a trial on a CPU
OK, OOM, TIMEOUT, FAILED = "ok", "oom", "timeout", "failed"
#: A trial with one of these ends the search: what it says is not whether the side fits.
STOPS = (TIMEOUT, FAILED)


def default_trial_timeout(device: torch.device) -> Optional[float]:
    return CPU_TRIAL_TIMEOUT if device.type == "cpu" else None


class CeilingError(ValueError):
    """A search that cannot be made; the message says why."""


@dataclass
class TrialResult:
    side: int
    status: str  # OK, OOM, TIMEOUT or FAILED
    peak_memory_mib: Optional[float] = None
    seconds: Optional[float] = None
    reason: Optional[str] = None
    run_dir: Optional[str] = None
    time_limit_s: Optional[float] = None  # the trial's time limit, if it had one

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def timed_out(self) -> bool:
        return self.status == TIMEOUT

    @property
    def stops(self) -> bool:
        return self.status in STOPS

    def as_record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> "TrialResult":
        return cls(**{key: record.get(key) for key in ("side", "status", "peak_memory_mib", "seconds",
                                                        "reason", "run_dir", "time_limit_s")})


def check_sides(min_side: int, max_side: int, step: int = STEP):
    if step < 1:
        raise CeilingError(f"the search step must be positive, got {step}")
    for name, side in (("--min-side", min_side), ("--max-side", max_side)):
        if side < step or side % step:
            raise CeilingError(f"{name} {side} is not a positive multiple of {step}")
    if max_side < min_side:
        raise CeilingError(f"--max-side {max_side} is below --min-side {min_side}")


def find_ceiling(trial: Callable[[int], TrialResult], min_side: int = MIN_SIDE, max_side: int = MAX_SIDE,
                 step: int = STEP) -> tuple[Optional[int], list[TrialResult]]:
    """The largest side (a multiple of ``step``) whose trial completes, and the trials made in order.

    None when even ``min_side`` runs out of memory; ``max_side`` when it completes (the true
    ceiling is then at least that). A trial past its time limit, or one whose method failed, ends the
    search: the side before it is returned (a lower bound too)."""
    check_sides(min_side, max_side, step)
    trials: list[TrialResult] = []

    def attempt(side: int) -> bool:
        result = trial(side)
        trials.append(result)
        return result.ok

    completed, failed, side = None, None, min_side
    while True:  # doubling
        if attempt(side):
            completed = side
            if side >= max_side:
                return completed, trials
            side = min(2 * side, max_side)
        else:
            failed = side
            break
    if completed is None or trials[-1].stops:
        return completed, trials
    while failed - completed > step:  # bisection on multiples of step
        middle = completed + (failed - completed) // (2 * step) * step
        if attempt(middle):
            completed = middle
        elif trials[-1].stops:
            break
        else:
            failed = middle
    return completed, trials


def ceiling_dir(runs: Path, profile: str, method: str, budget: MemoryBudget, model: str = DEFAULT_MODEL) -> Path:
    """The search's folder; a base model other than the default is named first, as in run folders."""
    return Path(runs) / FOLDER / profile / "-".join(name_parts(model) + [method, budget.text])


def trial_command(method: str, profile: str, side: int, budget: MemoryBudget, device: str, out: Path,
                  extra: tuple[str, ...] = ()) -> list[str]:
    """The ``python -m benchmark run`` of one trial: one sample of ``side``², one step per stage."""
    command = [sys.executable, "-m", "benchmark", "run", "--method", method, "--profile", profile,
               "--size", f"{side}x{side}", "--steps", str(STEPS), "--sr-steps", str(SR_STEPS),
               "--limit", "1", "--memory-budget", budget.text, "--no-score", "--no-progress",
               "--device", device, "--out", str(out), *extra]
    if get_method(method).inputs == PROMPTS:  # a super-resolution method has no text input
        command += ["--prompt", PROMPT]
    return command


def _failure(returncode: int, stderr: str) -> str:
    """Why a trial's subprocess did not finish, in one line."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        cause = " (most likely the kernel's out-of-memory killer)" if -returncode == signal.SIGKILL else ""
        return f"the trial's process was killed by {name}{cause}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    return f"the trial's process exited with status {returncode}" + (f": {lines[-1].strip()}" if lines else "")


def _crash_status(returncode: int, stderr: str) -> str:
    """A trial process that ended without a sample record: killed (most likely for memory) or a memory error
    is OOM; any other error is the method failing, not a measurement."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    last = lines[-1].lower() if lines else ""
    return OOM if returncode < 0 or "memoryerror" in last or any(m in last for m in OOM_MESSAGES) else FAILED


def subprocess_trial(method: str, profile: str, budget: MemoryBudget, device: str, trials_dir: Path,
                     extra: tuple[str, ...] = (), timeout: Optional[float] = None) -> Callable[[int], TrialResult]:
    """A trial that runs each side in a fresh ``python -m benchmark run`` and reads its sample record back."""

    def trial(side: int) -> TrialResult:
        out = Path(trials_dir) / f"{side}x{side}"
        environment_variables = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))}
        try:
            process = subprocess.run(trial_command(method, profile, side, budget, device, out, extra),
                                     capture_output=True, text=True, env=environment_variables,
                                     timeout=timeout)
        except subprocess.TimeoutExpired:
            return TrialResult(side, TIMEOUT, reason=f"the trial did not finish within its time limit of {timeout:g} s "
                               "(--trial-timeout)", run_dir=str(out), time_limit_s=timeout)
        if process.returncode == 2:  # bad input: no measurement, the search cannot go on
            lines = [line for line in process.stderr.splitlines() if line.strip()]
            raise CeilingError(f"the trial at {side}x{side} was refused: "
                               + (lines[-1].strip() if lines else "exit status 2"))
        record_path = out / "samples" / "00000.json"
        if process.returncode not in (0, PARTIAL_EXIT) or not record_path.is_file():
            reason = (_failure(process.returncode, process.stderr) if process.returncode
                      else "the trial's process exited without a sample record")
            return TrialResult(side, _crash_status(process.returncode, process.stderr) if process.returncode else FAILED,
                               reason=reason, run_dir=str(out))
        record = read_json(record_path)
        status = record.get("status", "ok")
        return TrialResult(side, status, record.get("peak_memory_mib"), record.get("seconds"),
                           None if status == OK else record.get("error"), str(out), timeout)

    return trial


def describe_trial(trial: TrialResult, reused: bool = False) -> str:
    """One printed line per trial."""
    where = " (reused from ceiling.json)" if reused else ""
    peak = "" if trial.peak_memory_mib is None else f"peak {trial.peak_memory_mib:.0f} MiB"
    seconds = "" if trial.seconds is None else f"{trial.seconds:.2f} s"
    if trial.ok:
        return f"{trial.side}x{trial.side}: ok, {', '.join(filter(None, [peak, seconds]))}{where}"
    if trial.timed_out:
        return f"{trial.side}x{trial.side}: stopped: {trial.reason}{where}"
    if trial.status == FAILED:
        return f"{trial.side}x{trial.side}: the method failed (not out of memory): {trial.reason}{where}"
    figures = ", ".join(filter(None, [f"after {seconds}" if seconds else "", peak]))
    return (f"{trial.side}x{trial.side}: out of memory{f' ({figures})' if figures else ''}: "
            f"{trial.reason}{where}")


def search(method: str, profile: str, budget: MemoryBudget, device: torch.device, runs: Path,
           min_side: int = MIN_SIDE, max_side: int = MAX_SIDE, step: int = STEP,
           trial: Optional[Callable[[int], TrialResult]] = None, extra: tuple[str, ...] = (),
           log: Optional[Callable[[str], None]] = None, trial_timeout: Optional[float] = None,
           model: str = DEFAULT_MODEL) -> dict:
    """Search the ceiling of ``method`` on ``profile`` under ``budget`` and write ceiling.json; returns it.

    ``trial`` defaults to :func:`subprocess_trial` with ``trial_timeout``; trials already in ceiling.json
    are reused, except failed ones and those stopped by a time limit shorter than this one. ``model``: stage I's
    base model, passed to each trial by ``extra`` (``--model``)."""
    check_sides(min_side, max_side, step)
    log = log or (lambda line: print(line, flush=True))  # one line per trial, as it comes
    folder = ceiling_dir(runs, profile, method, budget, model)
    path = folder / "ceiling.json"
    env = environment(device)
    record = {"kind": "ceiling", "method": method, "model": model, "profile": profile,
              "budget": budget.as_record(device),
              "device": device_name(device), "steps": STEPS, "sr_steps": SR_STEPS, "note": NOTE,
              "step": step, "prompt": PROMPT if get_method(method).inputs == PROMPTS else None,
              "min_side": min_side, "max_side": max_side, "trial_timeout_s": trial_timeout, "ceiling": None,
              "ceiling_is_lower_bound": False, "limited_by_time": False, "stopped_by_failure": False,
              "complete": False, "trials": [],
              "commit": env["git"]["commit"], "date": env["date"],
              "environment": env}
    known: dict[int, TrialResult] = {}
    if path.is_file():
        stored = read_json(path)
        stored.setdefault("model", DEFAULT_MODEL)  # searches made before base models were entries
        differing = [key for key in IDENTITY if stored.get(key) != record[key]]
        if differing:
            raise CeilingError(f"{path} holds a search with another {', '.join(differing)}; "
                               "delete that folder or give another --runs")
        known = {t["side"]: TrialResult.from_record(t) for t in stored["trials"]}
        known = {side: t for side, t in known.items() if t.status != FAILED and (
                 not t.timed_out or trial_timeout is not None and (t.time_limit_s or 0) >= trial_timeout)}
    trial = trial or subprocess_trial(method, profile, budget, str(device), folder / "trials", extra, trial_timeout)
    record["trials"] = [t.as_record() for t in known.values()]

    def logged(side: int) -> TrialResult:
        if side in known:
            log(describe_trial(known[side], reused=True))
            return known[side]
        result = trial(side)
        known[side] = result
        record["trials"] = [t.as_record() for _, t in sorted(known.items())]
        write_json(path, record)
        log(describe_trial(result))
        return result

    ceiling, made = find_ceiling(logged, min_side, max_side, step)
    stopped = bool(made) and made[-1].stops
    record.update(ceiling=ceiling, ceiling_is_lower_bound=ceiling == max_side or (stopped and ceiling is not None),
                  limited_by_time=stopped and made[-1].timed_out, stopped_by_failure=stopped and not made[-1].timed_out,
                  complete=True, trials=[t.as_record() for _, t in sorted(known.items())])
    write_json(path, record)
    return record


def summary_lines(record: dict) -> list[str]:
    """The closing lines of a search; the last reads ``ceiling <method> on <profile> under <budget>: <side> px``."""
    head = f"ceiling {record['method']} on {record['profile']} under {record['budget']['text']}"
    if record.get("limited_by_time"):
        stopped = max(t["side"] for t in record["trials"] if t["status"] == TIMEOUT)
        return [f"the trial at {stopped}x{stopped} ran past the {record['trial_timeout_s']:g} s time limit: the "
                "search stopped there, out of memory or not (raise --trial-timeout to go on)",
                f"{head}: at least {record['ceiling'] or 0} px (limited by time)"]
    if record.get("stopped_by_failure"):
        failed = next(t for t in reversed(record["trials"]) if t["status"] == FAILED)
        return [f"the method failed at {failed['side']}x{failed['side']} ({failed['reason']}): that is not out of "
                "memory, so the search stopped there; fix the method and run again (the trials made are reused, "
                "the failed one is tried again)", f"{head}: at least {record['ceiling'] or 0} px (stopped by a failure)"]
    if record["ceiling"] is None:
        return [f"even {record['min_side']}x{record['min_side']} ran out of memory under "
                f"{record['budget']['text']}: no side completes", f"{head}: 0 px"]
    if record["ceiling_is_lower_bound"]:
        return [f"--max-side {record['max_side']} completed, so the ceiling is at least that; "
                "raise --max-side to search further", f"{head}: at least {record['ceiling']} px"]
    return [f"{head}: {record['ceiling']} px"]
