"""The GPU measurement script's dry run: the same path on the CPU (tiny profile), so that the
script is known to work before a GPU is lent. Its figures are checked against each other and
against counts made here, not against fixed numbers."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from baselines.registry import in_plan
from baselines.settings import Settings
from benchmark.gpu_measure import FSTD_TILINGS, main, stage2_step
from benchmark.gpu_plan import DRY_PLAN, GPU_PLAN
from benchmark.runs.flops import count_flops
from helpers import load_sampler

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, asd_cache):
    out = tmp_path_factory.mktemp("gpu-measure") / "out"
    environment = {**os.environ, "ASD_BENCH_CACHE": str(asd_cache), "OUT": str(out.parent / "device-out"),
                   "OMP_NUM_THREADS": "1"}  # as helpers.one_thread: on shared cores one thread is several times faster
    (out.parent / "device-out").mkdir()
    process = subprocess.run(["bash", str(REPO / "scripts" / "gpu-measure.sh"), "--dry-run", "--out", str(out)],
                             cwd=REPO, env=environment, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    return out, json.loads((out / "summary.json").read_text())


def test_every_phase_ran_and_wrote_its_part(dry_run):
    out, summary = dry_run
    assert summary["dry_run"] and summary["skipped"] == []
    assert {(r["method"], r["size"][0]) for r in summary["method_runs"]} == {
        (m, side) for m in in_plan("gpu") for side in DRY_PLAN.sizes}
    assert all(r["status"] == "ok" and r["seconds_per_image"] > 0 for r in summary["method_runs"])
    assert [r["tiling"] for r in summary["table4"]] == list(FSTD_TILINGS)
    assert [(r["model"], r["method"], r["size"][0]) for r in summary["model_runs"]] == [
        (model, m, side) for model, names, sides in DRY_PLAN.model_runs for m in names for side in sides]
    assert all(r["status"] == "ok" and r["stage1_unet_calls"] > 0 for r in summary["model_runs"])
    assert ("sdxl", ("sr-plus", "md", "asd"), (2048, 4096)) in GPU_PLAN.model_runs  # the field's SDXL sides
    flux = {(m, side) for model, names, sides in GPU_PLAN.model_runs if model == "flux" for m in names for side in sides}
    assert {(m, side) for m in ("sr-plus", "fstd-t2i", "asd") for side in (1024, 2048, 4096)} <= flux
    assert any(r["model"] == "flux" and r["method"] == "fstd-t2i" for r in summary["model_runs"])
    assert [c["method"] for c in summary["ceilings"]] == [m for m, _, _ in DRY_PLAN.ceilings]
    assert summary["ceilings"][0]["trials"][0]["status"] == "ok"
    assert any(Path(report).name == "tiny.md" for report in summary["reports"])
    markdown = (out / "summary.md").read_text()
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    for heading in ("Stage II FLOP utilisation", "Fast path", "s / image", "Table 4", "Other base models", "Ceilings",
                    "Skipped"):
        assert any(line.startswith(f"## {heading}") for line in headings), heading
    shipped = sorted(p.name for p in (out.parent / "device-out").iterdir())  # what comes back from a device
    assert shipped == ["gpu-measure-records.tar.gz", "summary.json", "summary.md"]


def test_stage_two_costs_follow_the_methods(dry_run):
    _, summary = dry_run
    calls = {r["method"]: r["stage2_denoiser_calls"] for r in summary["method_runs"]}
    assert calls["sr-plus"] == calls["ar-plus"] == 0 and calls["asd"] == calls["ar-tile"] > 0
    table4 = {r["tiling"]: r for r in summary["table4"]}
    assert table4["implicit"]["stage2_denoiser_calls"] == table4["nonoverlap"]["stage2_denoiser_calls"]
    assert table4["explicit"]["stage2_denoiser_calls"] >= table4["nonoverlap"]["stage2_denoiser_calls"]
    assert table4["nonoverlap"]["time_vs_no_overlap"] == 1.0


def test_utilisation_is_counted_flops_over_measured_seconds(dry_run):
    _, summary = dry_run
    pipeline = load_sampler("asd", Settings(DRY_PLAN.steps, DRY_PLAN.sr_steps))
    for row in summary["stage2_utilisation"]:
        assert row["flops_per_step"] == count_flops(stage2_step(pipeline, row["size"]))  # a recount here
        assert row["flops_per_second"] == pytest.approx(row["flops_per_step"] / row["seconds"])
        assert row["utilisation_matmul"] == pytest.approx(
            row["flops_per_second"] / summary["peak"]["matmul_flops_per_second"])
        assert row["utilisation_datasheet"] is None  # no data-sheet peak for a CPU
    latent = DRY_PLAN.sizes[0] // pipeline.backbone.latent_factor
    tile = torch.zeros((1, 4, latent, latent))
    cond = torch.zeros((1, 3, latent, latent))
    with torch.no_grad():
        single = count_flops(lambda: pipeline.backbone.denoise(tile, torch.tensor(999), cond))
    first = summary["stage2_utilisation"][0]
    assert first["flops_per_step"] == first["tiles_per_step"] * single  # the counter sees every tile


def test_fast_path_variants_restore_the_models(dry_run):
    _, summary = dry_run
    settings = [r["setting"] for r in summary["fast_path_variants"]]
    assert settings[0].startswith("defaults") and "attention=classic" in settings
    assert "channels_last=True" in settings and "dtype=bf16" in settings
    assert any(s.startswith("compile=True") for s in settings)
    assert all(r.get("seconds") for r in summary["fast_path_variants"]), summary["fast_path_variants"]
    runs = [r for r in summary["method_runs"] if r["method"] == "asd"]
    results = json.loads((Path(runs[0]["run_dir"]) / "results.json").read_text())
    assert results["fast_path"]["attention"] == "sdpa" and results["weights"]["stage2"]["dtype"] == "torch.float32"


def test_the_script_refuses_cuda_it_cannot_see(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit, match="no CUDA device"):
        main(["--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()  # refused before anything is loaded or written
