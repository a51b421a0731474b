"""The ceiling search: doubling then bisection, the cap, resuming, and the verb around it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import CPU

from benchmark import api
from benchmark.cli import main
from benchmark.runs import ceiling
from benchmark.runs.ceiling import CeilingError, TrialResult, find_ceiling, subprocess_trial
from benchmark.reporting.ceilings import max_res
from benchmark.runs.measure import MemoryBudget


class Threshold:
    """A fake trial: sides up to ``largest`` complete, larger ones run out of memory."""

    def __init__(self, largest):
        self.largest, self.sides = largest, []

    def __call__(self, side):
        self.sides.append(side)
        if side <= self.largest:
            return TrialResult(side, "ok", peak_memory_mib=side / 8, seconds=0.1)
        return TrialResult(side, "oom", peak_memory_mib=self.largest / 8, seconds=0.05, reason="fake OOM")


@pytest.mark.parametrize("largest", [512, 1024, 1536, 2048, 2560, 3584, 4096, 5120, 7680, 8192, 9728, 12800, 18000])
def test_doubling_then_bisection_finds_the_exact_threshold(largest):
    trial = Threshold(largest)
    found, trials = find_ceiling(trial, 512, 18432)
    assert found == largest // 512 * 512
    assert [t.side for t in trials] == trial.sides and len(set(trial.sides)) == len(trial.sides)
    assert all(side % 512 == 0 and 512 <= side <= 18432 for side in trial.sides)
    doubling = [s for s in trial.sides if s & (s - 1) == 0]
    assert trial.sides[:len(doubling)] == [512 * 2**k for k in range(len(doubling))]  # doubling comes first
    assert len(trial.sides) <= 6 + 5  # log2(18432 / 512) doublings and at most log2 of the gap in bisections
    # the ceiling completed and the next multiple of 512 was tried and failed
    assert any(t.side == found and t.ok for t in trials)
    if found < 18432:
        assert any(t.side == found + 512 and not t.ok for t in trials)


def test_the_search_is_the_exact_sequence_for_one_threshold():
    trial = Threshold(5632)
    assert find_ceiling(trial, 512, 18432)[0] == 5632
    assert trial.sides == [512, 1024, 2048, 4096, 8192, 6144, 5120, 5632]


def test_max_side_caps_the_search():
    trial = Threshold(10**6)
    found, trials = find_ceiling(trial, 512, 5120)
    assert found == 5120 and trial.sides == [512, 1024, 2048, 4096, 5120]
    found, trials = find_ceiling(Threshold(4096), 512, 4096)
    assert found == 4096 and [t.side for t in trials] == [512, 1024, 2048, 4096]
    trial = Threshold(4608)
    assert find_ceiling(trial, 1024, 6144)[0] == 4608 and trial.sides[0] == 1024


def test_when_even_the_smallest_side_runs_out_of_memory_there_is_no_ceiling():
    trial = Threshold(0)
    found, trials = find_ceiling(trial, 512, 18432)
    assert found is None and [t.side for t in trials] == [512] and not trials[0].ok
    lines = ceiling.summary_lines({"method": "sr-plus", "profile": "tiny", "budget": {"text": "1GiB"},
                                   "ceiling": None, "min_side": 512, "max_side": 18432,
                                   "ceiling_is_lower_bound": False})
    assert lines == ["even 512x512 ran out of memory under 1GiB: no side completes",
                     "ceiling sr-plus on tiny under 1GiB: 0 px"]


@pytest.mark.parametrize("low, high, message", [(500, 4096, "--min-side 500 is not a positive multiple of 512"),
                                                 (512, 1000, "--max-side 1000"), (2048, 1024, "is below --min-side")])
def test_bad_sides_are_refused(low, high, message):
    with pytest.raises(CeilingError, match=message):
        find_ceiling(Threshold(4096), low, high)


def test_the_verb_writes_every_trial_resumes_and_prints_the_ceiling_last(tmp_path, capsys, monkeypatch):
    made = []

    def fake_subprocess_trial(method, profile, budget, device, trials_dir, extra=(), timeout=None):
        assert (method, profile, budget.text, device) == ("asd", "tiny", "4GiB", "cpu")
        trial = Threshold(2560)

        def run_trial(side):
            made.append(side)
            result = trial(side)
            result.run_dir = str(trials_dir / f"{side}x{side}")
            return result
        return run_trial

    monkeypatch.setattr(ceiling, "subprocess_trial", fake_subprocess_trial)

    def search(max_side):
        logged = []
        finished = api.ceiling("asd", budget="4GiB", max_side=max_side, runs=tmp_path, log=logged.append)
        assert finished.out == tmp_path / "ceiling" / "tiny" / "asd-4GiB"
        assert finished.results == json.loads((finished.out / "ceiling.json").read_text())
        return logged + ceiling.summary_lines(finished.results)  # what the verb prints

    printed = search(8192)
    assert printed[-1] == "ceiling asd on tiny under 4GiB: 2560 px"
    assert made == [512, 1024, 2048, 4096, 3072, 2560]
    assert sum("out of memory" in line for line in printed) == 2
    path = tmp_path / "ceiling" / "tiny" / "asd-4GiB" / "ceiling.json"
    record = json.loads(path.read_text())
    assert record["kind"] == "ceiling" and record["ceiling"] == 2560 and not record["ceiling_is_lower_bound"]
    assert record["budget"] == {"bytes": 4 * 2**30, "text": "4GiB", "enforced_by": MemoryBudget.enforced_by(CPU)}
    assert (record["steps"], record["sr_steps"], record["max_side"]) == (1, 1, 8192)
    assert "memory does not depend on the step count" in record["note"]
    assert record["commit"] and record["date"] and record["environment"]["device_type"] == "cpu"
    assert [t["side"] for t in record["trials"]] == [512, 1024, 2048, 2560, 3072, 4096]
    assert set(record["trials"][0]) == {"side", "status", "peak_memory_mib", "seconds", "reason", "run_dir",
                                        "time_limit_s"}
    assert record["trials"][-1]["status"] == "oom" and record["trials"][-1]["reason"] == "fake OOM"

    # again: every trial is reused from ceiling.json, none is run
    made.clear()
    printed = search(8192)
    assert made == [] and printed[-1] == "ceiling asd on tiny under 4GiB: 2560 px"
    assert sum("reused from ceiling.json" in line for line in printed) == 6

    # a larger cap goes on from the trials on disk; a cap that completes says "at least"
    printed = search(2048)
    assert made == [] and printed[-1] == "ceiling asd on tiny under 4GiB: at least 2048 px"
    assert json.loads(path.read_text())["ceiling_is_lower_bound"] is True


def test_the_verb_prints_the_ceiling_last(tmp_path, capsys, monkeypatch):
    def fake_subprocess_trial(method, profile, budget, device, trials_dir, extra=(), timeout=None):
        return Threshold(1024)

    monkeypatch.setattr(ceiling, "subprocess_trial", fake_subprocess_trial)
    assert main(["ceiling", "--method", "asd", "--budget", "4GiB", "--max-side", "4096", "--runs", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == "ceiling asd on tiny under 4GiB: 1024 px"
    assert any(str(tmp_path / "ceiling" / "tiny" / "asd-4GiB" / "ceiling.json") in line for line in printed)


def test_the_weight_paths_and_plugins_go_to_every_trial(tmp_path, monkeypatch):
    seen = {}

    def fake_subprocess_trial(method, profile, budget, device, trials_dir, extra=(), timeout=None):
        seen["extra"] = extra
        return Threshold(512)

    monkeypatch.setattr(ceiling, "subprocess_trial", fake_subprocess_trial)
    api.ceiling("asd", budget="4GiB", max_side=1024, runs=tmp_path, weights={"lora": "/some/lora"},
                log=lambda _: None)
    assert seen["extra"] == ("--lora", "/some/lora")


@pytest.mark.parametrize("arguments, message", [
    (dict(budget="lots"), "memory budget 'lots' is not a size with a unit"),
    (dict(min_side=500), "--min-side 500 is not a positive multiple of 512"),
    (dict(method="sdxl"), "unknown method 'sdxl'"),
])
def test_bad_input_is_refused_before_any_trial(tmp_path, monkeypatch, arguments, message):
    monkeypatch.setattr(ceiling, "subprocess_trial", lambda *a, **k: pytest.fail("a trial ran"))
    with pytest.raises(ValueError, match=message):
        api.ceiling(**{"method": "asd", "runs": tmp_path, "log": lambda _: None, **arguments})
    assert not list(tmp_path.iterdir())


def test_a_search_with_another_device_is_not_mixed_in(tmp_path):
    budget = MemoryBudget.parse("1GiB")
    ceiling.search("asd", "tiny", budget, CPU, tmp_path, max_side=1024, trial=Threshold(512), log=lambda _: None)
    path = tmp_path / "ceiling" / "tiny" / "asd-1GiB" / "ceiling.json"
    record = json.loads(path.read_text())
    record["device"] = "another machine"
    path.write_text(json.dumps(record))
    with pytest.raises(CeilingError, match="another device"):
        ceiling.search("asd", "tiny", budget, CPU, tmp_path, max_side=1024, trial=Threshold(512), log=lambda _: None)


def fake_process(returncode, stderr="", record=None):
    """A stand-in for ``subprocess.run`` that writes what ``python -m benchmark run`` would leave."""
    def run(command, **kwargs):
        assert command[:4] == [sys.executable, "-m", "benchmark", "run"]
        assert command[command.index("--steps") + 1] == "1" and command[command.index("--sr-steps") + 1] == "1"
        assert command[command.index("--memory-budget") + 1] == "2GiB" and "--no-score" in command
        if record is not None:
            out = command[command.index("--out") + 1]
            path = Path(out) / "samples" / "00000.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(record))
        return subprocess.CompletedProcess(command, returncode, "", stderr)
    return run


@pytest.mark.parametrize("returncode, stderr, record, status, reason", [
    (0, "", {"status": "ok", "peak_memory_mib": 900.5, "seconds": 2.5}, "ok", None),
    (0, "", {"status": "oom", "peak_memory_mib": 2040.0, "seconds": 1.5, "error": "RuntimeError: can't allocate"},
     "oom", "RuntimeError: can't allocate"),
    (-9, "", None, "oom", "killed by SIGKILL (most likely the kernel's out-of-memory killer)"),
    (-11, "", None, "oom", "killed by SIGSEGV"),
    (1, "Traceback ...\nMemoryError\n", None, "oom", "exited with status 1: MemoryError"),
    (1, "Traceback ...\nRuntimeError: boom\n", None, "failed", "exited with status 1: RuntimeError: boom"),
    (3, "", {"status": "failed", "peak_memory_mib": 10.0, "seconds": 0.5, "error": "RuntimeError: boom"},
     "failed", "RuntimeError: boom"),  # the run's partial exit status, its record saying why
])
def test_a_trial_reads_its_sample_record_and_tells_a_kill_from_a_failure(tmp_path, monkeypatch, returncode, stderr,
                                                                   record, status, reason):
    monkeypatch.setattr(subprocess, "run", fake_process(returncode, stderr, record))
    result = subprocess_trial("asd", "tiny", MemoryBudget.parse("2GiB"), "cpu", tmp_path)(1024)
    assert result.side == 1024 and result.status == status and result.run_dir == str(tmp_path / "1024x1024")
    if reason is None:
        assert result.reason is None and result.peak_memory_mib == 900.5 and result.seconds == 2.5
    else:
        assert reason in result.reason
    if record is None:
        assert result.peak_memory_mib is None


def test_a_refused_trial_stops_the_search(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", fake_process(2, "error: missing weights for paper\n"))
    with pytest.raises(CeilingError, match="refused: error: missing weights for paper"):
        subprocess_trial("asd", "paper", MemoryBudget.parse("2GiB"), "cpu", tmp_path)(512)


def test_ceiling_help_explains_the_verb(capsys):
    with pytest.raises(SystemExit):
        main(["ceiling", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for part in ("largest square side", "doubl", "bisection", "--max-side", "fresh process", "ceiling.json"):
        assert part in text


class Slow(Threshold):
    """A fake trial that completes up to ``largest`` and runs past its time limit at the sides in ``slow``."""

    def __init__(self, largest, slow):
        super().__init__(largest)
        self.slow = slow

    def __call__(self, side):
        if side in self.slow:
            self.sides.append(side)
            return TrialResult(side, ceiling.TIMEOUT, reason="past 5 s", time_limit_s=5.0)
        return super().__call__(side)


@pytest.mark.parametrize("largest, slow, found, sides", [
    (10**6, {4096}, 2048, [512, 1024, 2048, 4096]),  # stopped while doubling: no bisection towards a slow side
    (5000, {4608}, 4096, [512, 1024, 2048, 4096, 8192, 6144, 5120, 4608]),  # stopped while bisecting
    (10**6, {512}, None, [512]),
])
def test_a_trial_past_its_time_limit_stops_the_search_with_a_lower_bound(largest, slow, found, sides):
    trial = Slow(largest, slow)
    got, trials = find_ceiling(trial, 512, 18432)
    assert got == found and trial.sides == sides and trials[-1].timed_out


def test_the_search_records_a_time_limit_and_reruns_trials_stopped_by_a_shorter_one(tmp_path):
    budget = MemoryBudget.parse("4GiB")
    record = ceiling.search("asd", "tiny", budget, CPU, tmp_path, 512, 8192, trial=Slow(10**6, {2048}),
                            log=lambda line: None, trial_timeout=5.0)
    assert record["ceiling"] == 1024 and record["limited_by_time"] and record["ceiling_is_lower_bound"]
    assert record["trial_timeout_s"] == 5.0
    assert ceiling.summary_lines(record)[-1].endswith("at least 1024 px (limited by time)")
    from benchmark.reporting.ceilings import max_res

    assert max_res(record) == "≥ 1024² under 4GiB (2048² past the 5 s time limit)"
    again = Threshold(10**6)  # a longer limit: the stopped trial is made again, the finished ones reused
    record = ceiling.search("asd", "tiny", budget, CPU, tmp_path, 512, 8192, trial=again, log=lambda line: None,
                            trial_timeout=50.0)
    assert again.sides == [2048, 4096, 8192] and record["ceiling"] == 8192 and not record["limited_by_time"]


def test_the_default_time_limit_is_on_a_cpu_only(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(ceiling, "search", lambda *a, **k: seen.update(k) or {"ceiling": 512})
    api.ceiling("asd", "tiny", "4GiB", 512, 512, "cpu", tmp_path, log=lambda line: None)
    assert seen["trial_timeout"] == ceiling.CPU_TRIAL_TIMEOUT
    api.ceiling("asd", "tiny", "4GiB", 512, 512, "cpu", tmp_path, log=lambda line: None, trial_timeout=0)
    assert seen["trial_timeout"] is None
    assert ceiling.default_trial_timeout(torch.device("cuda")) is None


class FailsAt(Threshold):
    """Completes below ``largest`` like Threshold, and the method fails (not OOM) at ``failing``."""

    def __init__(self, largest, failing):
        super().__init__(largest)
        self.failing = failing

    def __call__(self, side):
        if side == self.failing:
            self.sides.append(side)
            return TrialResult(side, "failed", reason="RuntimeError: boom")
        return super().__call__(side)


def test_a_failing_method_stops_the_search_as_a_failure_not_as_out_of_memory(tmp_path):
    budget, lines = MemoryBudget.parse("1GiB"), []
    record = ceiling.search("asd", "tiny", budget, CPU, tmp_path, max_side=4096, trial=FailsAt(4096, 2048),
                            log=lines.append)
    assert [t["status"] for t in record["trials"]] == ["ok", "ok", "failed"]  # 512, 1024, then stopped
    assert record["ceiling"] == 1024 and record["ceiling_is_lower_bound"] and record["stopped_by_failure"]
    assert not record["limited_by_time"]
    assert "the method failed (not out of memory): RuntimeError: boom" in lines[-1]
    summary = ceiling.summary_lines(record)
    assert "the method failed at 2048x2048 (RuntimeError: boom)" in summary[0]
    assert summary[-1].endswith("at least 1024 px (stopped by a failure)")
    assert max_res(record) == "≥ 1024² under 1GiB (the method failed at 2048², not OOM)"
    again = FailsAt(4096, None)  # fixed: the failed side is tried again, the others are reused
    record = ceiling.search("asd", "tiny", budget, CPU, tmp_path, max_side=4096, trial=again, log=lambda _: None)
    assert again.sides == [2048, 4096] and record["ceiling"] == 4096 and not record["stopped_by_failure"]
