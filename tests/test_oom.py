"""Out of memory is a measured result: a sample over its memory budget is recorded, the run goes on."""

import json
import resource
import sys
import warnings
from dataclasses import dataclass, field

import pytest
import torch

from helpers import CPU, load_sampler

from baselines.notes import SampleNote
from baselines.registry import get_method
from baselines.settings import Settings
from benchmark import api
from benchmark.cli.summaries import run_line
from benchmark.metrics.scoring import score_run
from baselines.out_of_memory import is_out_of_memory
from benchmark.runs.measure import (CPU_ENFORCEMENT, MemoryBudget, MemoryBudgetError, format_memory_size, held_bytes,
                                    parse_memory_size)
from benchmark.runs.model_job import ModelJob
from benchmark.runs.runner import run
from benchmark.runs.samples import plan_samples
from benchmark.spec import RunSpec

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="a CPU budget is RLIMIT_AS with /proc/self/status (Linux)")
MIB = 2**20
ORACLE = RunSpec("fstd", "oracle", size=(512, 512), steps=2, progress=False)


def resident_bytes() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 2**10
    raise AssertionError("no VmRSS")


def records(out):
    return [json.loads(p.read_text()) for p in sorted((out / "samples").glob("*.json"))]


@pytest.mark.parametrize("text, size, canonical", [
    ("1GiB", 2**30, "1GiB"), ("512MiB", 512 * MIB, "512MiB"), ("32GiB", 32 * 2**30, "32GiB"),
    ("1024MiB", 2**30, "1GiB"), ("1.5GiB", 1536 * MIB, "1536MiB"), ("32GB", 32 * 10**9, "32GB"),
    (" 2 gib ", 2 * 2**30, "2GiB"), ("4096KiB", 4 * MIB, "4MiB"),
])
def test_memory_sizes_are_read_and_spelt_exactly(text, size, canonical):
    assert parse_memory_size(text) == size
    assert format_memory_size(size) == canonical
    assert MemoryBudget.parse(text).text == canonical


@pytest.mark.parametrize("text", ["lots", "12", "GiB", "-1GiB", "1XB", "0GiB", "100KiB", "1e3MiB", ""])
def test_bad_memory_sizes_are_refused(text):
    with pytest.raises(MemoryBudgetError):
        parse_memory_size(text)


VERBS = {"run": lambda value, runs: api.run(RunSpec.from_record({**ORACLE.as_record(), "memory_budget": value,
                                                                   "runs": str(runs)})),
         "tables": lambda value, runs: api.tables(memory_budget=value, runs=runs, loras={3: "unused"}),
         "ceiling": lambda value, runs: api.ceiling("asd", budget=value, runs=runs)}


@pytest.mark.parametrize("verb", list(VERBS))
@pytest.mark.parametrize("value, message", [
    ("lots", "memory budget 'lots' is not a size with a unit, e.g. 32GiB"),
    ("12", "memory budget '12' is not a size with a unit"),
    ("0MiB", "memory budget '0MiB' is below 1 MiB"),
])
def test_a_bad_memory_budget_is_refused_with_one_clear_line(tmp_path, verb, value, message):
    with pytest.raises(MemoryBudgetError) as error:
        VERBS[verb](value, tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())  # refused before anything ran


def test_what_counts_as_out_of_memory():
    cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                       "memory: you tried to allocate 8388608 bytes. Error code 12 (Cannot allocate memory)")
    assert is_out_of_memory(cpu) and is_out_of_memory(MemoryError()) and is_out_of_memory(
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_out_of_memory(RuntimeError("shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only the allocators' errors


@dataclass
class AllocatingJob:
    """Sample i allocates ``mib[i]`` MiB in 32 MiB blocks, touched, and holds them to the end."""
    mib: list
    device: torch.device = CPU
    ran: list = field(default_factory=list)

    def parameters(self):
        return {"method": "allocate", "profile": "test", "mib": self.mib}

    def warm_up(self):
        pass

    def sample_size(self, index):
        return (self.mib[index], 1)

    def run_sample(self, index):
        self.ran.append(index)
        blocks = [torch.ones(32 * MIB // 4) for _ in range(self.mib[index] // 32)]
        return {"first": blocks[0][:4].clone()}, {"held_mib": 32 * len(blocks)}

    def summarise(self, records, out):
        return {"statuses": [r["status"] for r in records]}


@linux_only
def test_a_sample_over_its_real_budget_is_recorded_as_oom_and_the_run_goes_on(tmp_path):
    budget = MemoryBudget(held_bytes() + 384 * MIB)  # what the budget counts: resident + free heap
    resident = resident_bytes()
    limit_before = resource.getrlimit(resource.RLIMIT_AS)
    job = AllocatingJob([64, 2048, 256, 2048])  # the 2 GiB samples cannot fit; the 256 MiB one, run after, can
    results = run(job, 4, tmp_path, progress=False, budget=budget)

    assert resource.getrlimit(resource.RLIMIT_AS) == limit_before  # restored after each sample
    assert results["statuses"] == ["ok", "oom", "ok", "oom"]
    assert results["finished_samples"] == 2 and results["oom_samples"] == 2 and results["samples"] == 4
    got = records(tmp_path)
    oom = got[1]
    assert oom["status"] == "oom" and oom["size"] == [2048, 1] and "can't allocate memory" in oom["error"]
    assert "\n" not in oom["error"] and oom["error"].startswith("RuntimeError: ")
    assert oom["seconds"] > 0
    # it got as far as the budget allowed, and no further
    assert resident / MIB + 384 - 160 < oom["peak_memory_mib"] < budget.bytes / MIB + 32
    assert got[2]["status"] == "ok" and got[2]["held_mib"] == 256  # the failed sample's blocks were released
    assert all(r["memory_budget"] == {"bytes": budget.bytes, "text": budget.text,
                                      "enforced_by": CPU_ENFORCEMENT} for r in got)
    assert json.loads((tmp_path / "run.json").read_text())["memory_budget"]["text"] == budget.text
    # means are over the finished samples only
    assert results["seconds_per_sample"] == pytest.approx((got[0]["seconds"] + got[2]["seconds"]) / 2)
    assert results["peak_memory_mib"] == max(got[0]["peak_memory_mib"], got[2]["peak_memory_mib"])
    assert not (tmp_path / "samples" / "00001.first.npy").exists()

    # a resumed run keeps the OOM records: they are measured, not redone
    first = (tmp_path / "samples" / "00001.json").read_bytes()
    again = AllocatingJob(job.mib + [64])
    again.parameters = job.parameters  # the same run, one sample longer
    resumed = run(again, 5, tmp_path, progress=False, budget=budget)
    assert again.ran == [4] and resumed["resumed_samples"] == 4
    assert (tmp_path / "samples" / "00001.json").read_bytes() == first
    assert resumed["oom_samples"] == 2 and resumed["finished_samples"] == 3


class NotingJob(AllocatingJob):
    """Sample 1 notes twice the same thing and warns once otherwise; sample 2 notes, then runs out of memory."""

    def run_sample(self, index):
        if index >= 1:
            warnings.warn(f"sample {index} went the long way", SampleNote)
        if index == 1:
            warnings.warn("sample 1 went the long way", SampleNote)
            warnings.warn("an ordinary warning", UserWarning)
        if index == 2:
            torch.empty(2**50, dtype=torch.uint8)  # the CPU allocator's own error
        return super().run_sample(index)


def test_what_a_method_notes_while_making_a_sample_goes_into_its_record(tmp_path):
    with pytest.warns(UserWarning) as shown:
        results = run(NotingJob([32, 32, 32]), 3, tmp_path, progress=False)
    assert results["statuses"] == ["ok", "ok", "oom"]
    assert [r.get("notes") for r in records(tmp_path)] == [
        None, ["sample 1 went the long way"], ["sample 2 went the long way"]]
    assert "an ordinary warning" in [str(w.message) for w in shown]  # other warnings still reach the user


@linux_only
def test_memory_free_inside_the_heap_counts_as_held(tmp_path):
    """A worker that earlier work has grown holds freed heap memory; once trimmed it is no longer
    resident, yet the allocator reuses it without mapping more, so it is not budget to spare (CI once
    let a 2 GiB sample through a 384 MiB budget this way)."""
    blocks = [torch.ones(MIB // 4) for _ in range(2400)]  # 1 MiB blocks from the heap, every 16th kept
    kept = blocks[::16]
    del blocks
    budget = MemoryBudget(held_bytes() + 384 * MIB)
    results = run(AllocatingJob([256, 2048]), 2, tmp_path, progress=False, budget=budget)
    assert results["statuses"] == ["ok", "oom"] and len(kept) == 150


@linux_only
def test_a_budget_below_what_the_process_holds_is_oom_at_once(tmp_path, capsys):
    finished = api.run(RunSpec.from_record({**ORACLE.as_record(), "limit": 2, "memory_budget": "64MiB",
                                            "runs": str(tmp_path)}))
    out = next((tmp_path / "oracle" / "fstd").iterdir())
    assert finished.out == out
    assert out.name.endswith("-s2-seed0-mem64MiB")
    results = json.loads((out / "results.json").read_text())
    assert results["finished_samples"] == 0 and results["oom_samples"] == 2
    assert results["seconds_per_sample"] is None and results["seam_score"] is None
    assert results["distribution_error"] is None and results["peak_memory_mib"] is None
    assert "no sample of 2 finished (2 ran out of memory under the 64MiB budget)" in results["note"]
    assert results["memory_budget"]["text"] == "64MiB"
    assert all("below the" in r["error"] and r["size"] == [512, 512] for r in records(out))
    assert "2 of 2 samples out of memory under 64MiB" in run_line(out, results)  # what `run` prints
    assert "Traceback" not in capsys.readouterr().err


def test_without_a_budget_the_run_directory_and_parameters_are_as_before(tmp_path):
    spec = RunSpec.from_record({**ORACLE.as_record(), "limit": 1, "runs": str(tmp_path)})
    api.run(spec)
    out = next((tmp_path / "oracle" / "fstd").iterdir())
    assert out.name == "implicit-t64-random-r32-k4-fill-eps-512x512-s2-seed0"
    assert json.loads((out / "run.json").read_text())["memory_budget"] is None
    # a run directory written before budgets existed (no memory_budget key) still resumes
    run_file = out / "run.json"
    parameters = json.loads(run_file.read_text())
    del parameters["memory_budget"]
    run_file.write_text(json.dumps(parameters))
    api.run(spec)
    results = json.loads((out / "results.json").read_text())
    assert results["finished_samples"] == 1 and results["oom_samples"] == 0 and results["resumed_samples"] == 1


class OneOOMJob(ModelJob):
    def run_sample(self, index):
        if index == 1:
            held = torch.ones(MIB)  # noqa: F841  (what the failed sample held)
            raise MemoryError("out of memory in sample 1")
        return super().run_sample(index)


def test_model_runs_summarise_and_score_around_oom_samples(tmp_path, single_thread):
    pipeline = load_sampler("sr-tile", Settings(steps=1, sr_steps=1))
    plan = plan_samples(None, tmp_path, prompt="a kite over a beach", size=(256, 256))
    results = run(OneOOMJob(get_method("sr-tile"), pipeline, plan), 3, tmp_path / "run", progress=False)
    rows = results["per_image"]
    assert [row["status"] for row in rows] == ["ok", "oom", "ok"]
    assert rows[1]["image"] is None and rows[1]["size"] == [256, 256]
    assert rows[1]["error"] == "MemoryError: out of memory in sample 1"
    assert results["finished_samples"] == 2 and results["oom_samples"] == 1
    assert results["stage2_denoiser_calls_per_image"] == rows[0]["stage2_denoiser_calls"] > 0
    assert results["memory_budget"] is None
    scored = score_run(tmp_path / "run", CPU)
    assert scored["scores"]["oom_samples_skipped"] == 1
    assert scored["scores"]["inception_score"] is not None and scored["scores"]["seam_score"] is not None
    assert [row["status"] for row in scored["per_image"]] == ["ok", "oom", "ok"]


def test_a_model_run_whose_every_sample_is_oom_finishes_and_scores_nothing(tmp_path, capsys, single_thread):
    finished = api.run(RunSpec("sr-plus", size=(256, 256), prompt="p", steps=1, memory_budget="64MiB", runs=tmp_path,
                               progress=False))
    assert "sr-plus on tiny: 1 of 1 samples out of memory under 64MiB" in run_line(finished.out, finished.results)
    assert "Traceback" not in capsys.readouterr().err
    out = next((tmp_path / "tiny" / "sr-plus").iterdir())
    assert finished.out == out
    assert out.name.endswith("-mem64MiB")
    results = json.loads((out / "results.json").read_text())
    assert results["seconds_per_image"] is None and results["stage1_unet_calls_per_image"] is None
    assert results["scores"]["oom_samples_skipped"] == 1 and results["scores"]["fid"] is None
    assert "all 1 samples ran out of memory" in results["scores"]["skipped"]["clip_score"]
