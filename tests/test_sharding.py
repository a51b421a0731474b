"""A run sharded over two processes by ``accelerate launch`` (gloo on the CPU) makes what one
process makes; a rank killed mid-run loses only its unfinished sample, and the same command
resumes without recomputing a finished one.

accelerate 1.15's ``--cpu`` starts one process (several only through mpirun), so two CPU
processes are launched as torch's elastic launcher starts GPU ones: ``--multi_gpu`` with
``--device cpu`` (docs/scaling-out.md says so)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from benchmark import api
from benchmark.runs.shard import ONE, current
from benchmark.spec import RunSpec
from datasets_fixtures import make_dataset

ROOT = Path(__file__).resolve().parent.parent
SIZES = [(128, 192), (192, 128)] * 2  # two images per size: FID per ratio too
QUICK = ["--method", "asd", "--limit", "4", "--steps", "1", "--sr-steps", "2", "--no-progress"]
SPEC = RunSpec("asd", limit=4, steps=1, sr_steps=2, progress=False)  # QUICK, in one process
#: What a record or results.json may differ in between two runs of the same samples.
MEASURED = {"seconds", "peak_memory_mib", "peak_reserved_mib", "environment", "resumed_samples",
            "seconds_per_sample", "seconds_per_sample_std", "seconds_per_sample_min", "seconds_per_image",
            "oom_peak_memory_mib", "warm_up_seconds", "rank", "world_size", "processes"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(verb_arguments: list[str], cache: Path) -> subprocess.Popen:
    """``accelerate launch --multi_gpu --num_processes 2 -m benchmark ...`` on the CPU, in its own cache."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "benchmark", *verb_arguments, "--device", "cpu"]
    environment = {**os.environ, "ASD_BENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def rank_process(launcher: subprocess.Popen, rank: int) -> psutil.Process:
    """The worker of ``rank`` among the launcher's children (its RANK variable)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if child.environ().get("RANK") == str(rank) and "benchmark" in child.cmdline():
                    return child
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no rank {rank} process under the launcher")


def finish(launcher: subprocess.Popen) -> tuple[int, str]:
    output, _ = launcher.communicate(timeout=600)
    return launcher.returncode, output


def comparable(value, cache: Path):
    """A record or results.json without what is measured (seconds, memory, environment), the
    cache folder (the tiny LoRA's) written as <cache>."""
    if isinstance(value, dict):
        return {k: comparable(v, cache) for k, v in value.items() if k not in MEASURED}
    if isinstance(value, list):
        return [comparable(v, cache) for v in value]
    return value.replace(str(cache), "<cache>") if isinstance(value, str) else value


def read(path: Path, cache: Path):
    return comparable(json.loads(path.read_text()), cache)


def samples(out: Path) -> dict[str, Path]:
    return {path.name: path for path in sorted((out / "samples").iterdir()) if not path.name.startswith(".")}


def test_not_launched_is_one_process_without_accelerate_state():
    from accelerate.state import PartialState

    before = dict(PartialState._shared_state)
    assert current() is ONE and ONE.mine(range(5)) == [0, 1, 2, 3, 4]
    assert dict(PartialState._shared_state) == before


def test_a_sharded_run_equals_one_process_and_a_killed_rank_resumes(tmp_path, single_thread):
    """One thread in every process (accelerate launch sets OMP_NUM_THREADS=1): a CPU's float
    sums depend on the thread count, so byte-identical images need the same one."""
    one, sharded, cache = tmp_path / "one", tmp_path / "sharded", tmp_path / "cache"
    dataset = make_dataset(tmp_path / "mini", SIZES)
    arguments = [*QUICK, "--dataset", str(dataset)]
    from dataclasses import replace

    api.run(replace(SPEC, dataset=str(dataset), out=one))
    session_cache = Path(os.environ["ASD_BENCH_CACHE"])

    # a cache of its own, holding only the tiny LoRA the run above trained (rank 0 loads first, the other
    # rank after it, as with any weights; training it again under two ranks would cost a minute of CI)
    for lora in session_cache.glob("arad-lora-tiny-*"):
        shutil.copytree(lora, cache / lora.name)
    launcher = launch(["run", *arguments, "--out", str(sharded), "--no-score"], cache)
    rank1 = rank_process(launcher, 1)
    first = sharded / "samples" / "00001.json"  # rank 1's first sample (samples 1 and 3 are its)
    while not first.exists():
        assert launcher.poll() is None, finish(launcher)[1]
        time.sleep(0.05)
    rank1.kill()
    status, output = finish(launcher)
    assert status != 0, output
    kept = {name: (path.stat().st_mtime_ns, path.read_bytes()) for name, path in samples(sharded).items()
            if name.endswith(".json")}
    assert "00001.json" in kept and "00003.json" not in kept, sorted(kept)

    status, output = finish(launch(["run", *arguments, "--out", str(sharded)], cache))
    assert status == 0, output
    for name, (mtime, data) in kept.items():  # finished samples were not made again
        path = sharded / "samples" / name
        assert (path.stat().st_mtime_ns, path.read_bytes()) == (mtime, data), name

    expected, got = samples(one), samples(sharded)
    assert sorted(expected) == sorted(got)
    for name, path in expected.items():
        if name.endswith(".png"):
            assert path.read_bytes() == got[name].read_bytes(), name
        else:
            assert read(path, session_cache) == read(got[name], cache), name
    results_one = json.loads((one / "results.json").read_text())
    results = json.loads((sharded / "results.json").read_text())
    for name, path in got.items():  # which process of how many made each sample
        if name.endswith(".json"):
            record = json.loads(path.read_text())
            assert (record["rank"], record["world_size"]) == (int(name[:5]) % 2, 2), name
    assert results["processes"]["world_size"] == 2 and results["processes"]["ranks"] == [0, 1]
    assert results_one["processes"] == {**results_one["processes"], "world_size": 1, "ranks": [0]}
    assert results["resumed_samples"] == len(kept) and results["finished_samples"] == 4
    assert results_one["scores"]["fid"] is not None
    for metric in ("fid", "kid", "inception_score", "seam_score"):  # float64 from float32 features of the same images
        assert results["scores"][metric] == pytest.approx(results_one["scores"][metric], rel=1e-5), metric
    # CLIP's float32 embeddings round differently in a batch of 2 than in one of 4
    assert results["scores"]["clip_score"] == pytest.approx(results_one["scores"]["clip_score"], rel=1e-5)
    assert read(sharded / "run.json", cache) == read(one / "run.json", session_cache)
    for row, row_one in zip(results["per_image"], results_one["per_image"]):  # per image, as the mean above
        assert row.pop("clip_score") == pytest.approx(row_one.pop("clip_score"), rel=1e-5, abs=1e-5)
    assert comparable({k: v for k, v in results.items() if k != "scores"}, cache) == \
        comparable({k: v for k, v in results_one.items() if k != "scores"}, session_cache)


def test_each_process_takes_every_world_th_sample_on_its_own_gpu():
    """Rank 1 of 3 takes samples 1, 4, 7; ``--device cuda`` becomes accelerate's cuda:LOCAL_RANK, a
    CPU stays a CPU, and one named GPU for every process is refused with the fix."""
    import torch
    from types import SimpleNamespace

    from benchmark.runs.shard import Shard, ShardError

    shard = Shard(rank=1, world=3, local_rank=1, state=SimpleNamespace(device=torch.device("cuda", 1)))
    assert shard.mine(range(9)) == [1, 4, 7] and not shard.main
    assert shard.device(torch.device("cuda")) == torch.device("cuda", 1)
    assert shard.device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ShardError, match="give --device cuda"):
        shard.device(torch.device("cuda", 0))


def test_rank_one_of_two_makes_only_its_samples_and_leaves_the_run_files_to_rank_0(tmp_path):
    """The runner as rank 1 sees it, rank 0's answers given in place of the process group."""
    from dataclasses import dataclass, field

    from baselines.tiling import TilingConfig
    from benchmark.oracle.job import OracleFSTDJob
    from benchmark.runs.runner import RunMismatchError, run
    from benchmark.runs.shard import Shard

    @dataclass(frozen=True)
    class RankOneOfTwo(Shard):
        answers: list = field(default_factory=list)

        def share(self, value):
            assert value is None  # only rank 0 has something to share
            return self.answers.pop(0)

        def gather(self, values):
            return [None, *values]

        def barrier(self, what):
            pass

    job = OracleFSTDJob(TilingConfig("none"), size=(256, 256), steps=2)
    parameters = {**job.parameters(), "memory_budget": None}
    finished = {"rank 0's results": True}
    shard = RankOneOfTwo(rank=1, world=2, answers=[(None, [0, 1, 2, 3, 4], parameters, 0), finished])
    assert run(job, 5, tmp_path, progress=False, shard=shard) == finished
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.json")) == ["00001.json", "00003.json"]
    assert not (tmp_path / "run.json").exists() and not (tmp_path / "results.json").exists()
    with pytest.raises(RunMismatchError, match=r"rank 1 runs .* other parameters than rank 0 \(seed\)"):
        run(job, 5, tmp_path, progress=False,
            shard=RankOneOfTwo(rank=1, world=2, answers=[(None, [], {**parameters, "seed": 1}, 0)]))


def test_a_cuda_environment_names_the_gpu_driver_and_power_limit(monkeypatch):
    """NVML faked (no GPU here): what a CUDA run records about its device."""
    import sys
    import types

    from benchmark.runs import records

    nvml = types.SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda index: ("gpu", index),
                                 nvmlSystemGetDriverVersion=lambda: b"575.57",
                                 nvmlDeviceGetPowerManagementLimit=lambda handle: 700000)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(records.torch.cuda, "get_device_name", lambda index: "NVIDIA H200")
    assert records.gpu_details(torch.device("cuda", 0)) == {"name": "NVIDIA H200", "driver": "575.57",
                                                             "power_limit_w": 700.0}
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    details = records.gpu_details(torch.device("cuda", 0))
    assert details["driver"] is None and details["nvml"].startswith("not available")
    assert "gpu" not in records.environment(torch.device("cpu"))
