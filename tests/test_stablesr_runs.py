"""StableSR as stage II from the command line: tiny runs, every tiling, the paper profile's files."""

import hashlib
import json

import pytest
import torch

from baselines.pipeline import backbone_needs, stage2_backbone
from baselines.models import WeightPaths
from baselines.paper_weights import MissingWeightsError
from baselines.stablesr.architecture import TINY, build_networks
from baselines.stablesr.loading import save_released
from benchmark import api
from benchmark.spec import RunSpec

FAST = dict(limit=1, sr_steps=2, score=False, progress=False)


def results(out):
    return json.loads((out / "results.json").read_text())


def stage2_records(out):
    return [json.loads(p.read_text())["stage2"] for p in sorted((out / "samples").glob("*.json"))]


def test_asd_runs_on_stablesr_and_names_it(tmp_path):
    out = tmp_path / "asd"
    api.run(RunSpec("asd", backbone="stablesr", steps=1, size=(256, 512), out=out, **FAST))
    found = results(out)
    assert found["backbone"] == "StableSR"
    assert found["weights"]["stage2"]["cfw_weight"] == 0.5 and found["weights"]["stage2"]["latent_factor"] == 8
    (record,) = stage2_records(out)
    assert record["backbone"] == "StableSR" and "space_timesteps" in record["sampler"]
    assert record["tile_plan"]["tile"] == 64  # 512 px at SD's factor 8


@pytest.mark.parametrize("tiling", ["nonoverlap", "explicit", "implicit"])
def test_fstd_runs_on_stablesr_with_every_tiling(tmp_path, tiling):
    out = tmp_path / tiling
    api.run(RunSpec("fstd", "tiny", backbone="stablesr", tiling=tiling, size=(256, 512), tile=32, overlap=16,
                    offset_range=16, out=out, **FAST))
    (record,) = stage2_records(out)
    assert record["latent_size"] == [32, 64]
    assert record["tile_plan"]["tiles_per_step"] == {"nonoverlap": 2, "implicit": 2, "explicit": 3}[tiling]  # Eq. 4
    assert results(out)["backbone"] == "StableSR"


def test_runs_on_each_backbone_go_to_different_folders(tmp_path):
    finished = api.run(RunSpec("fstd", "tiny", backbone="stablesr", size=(128, 128), runs=tmp_path, cfw_weight=0,
                               **FAST))
    (folder,) = (tmp_path / "tiny" / "fstd").iterdir()
    assert folder.name.endswith("-stablesr-w0-seed0") and finished.out == folder
    api.run(RunSpec("fstd", "tiny", size=(128, 128), runs=tmp_path, **FAST))  # the x4 upscaler's
    assert len(list((tmp_path / "tiny" / "fstd").iterdir())) == 2


def test_backbone_choice_and_what_paper_needs(tmp_path):
    paths = WeightPaths(stablesr=str(tmp_path / "a.ckpt"), stablesr_vae=str(tmp_path / "b.ckpt"))
    assert stage2_backbone(None, "paper", paths) == "x4"  # files not there: the x4 upscaler
    for name in ("a.ckpt", "b.ckpt"):
        (tmp_path / name).write_bytes(b"")
    assert stage2_backbone(None, "paper", paths) == "stablesr"  # the paper's backbone when found
    assert stage2_backbone(None, "tiny", paths) == "x4" and stage2_backbone("x4", "paper", paths) == "x4"
    assert backbone_needs(("base", "lora", "upscaler"), "stablesr") == ("base", "lora", "stablesr", "stablesr_vae")


def test_a_backbone_for_a_method_without_stage_two_or_on_the_oracle_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sr-plus has no stage II"):
        api.run(RunSpec("sr-plus", backbone="stablesr", runs=tmp_path, **FAST))
    with pytest.raises(ValueError, match="the oracle profile has no SR model; --backbone needs a model profile"):
        api.run(RunSpec("fstd", backbone="stablesr", progress=False, runs=tmp_path))
    assert not list(tmp_path.iterdir())


def test_missing_stablesr_files_are_named(tmp_path):
    with pytest.raises(MissingWeightsError) as error:
        api.run(RunSpec("fstd", "paper", backbone="stablesr", stablesr_ckpt=str(tmp_path / "nothing.ckpt"),
                        size=(256, 256), **FAST))
    message = str(error.value)
    assert "nothing.ckpt is not a file (from --stablesr-ckpt" in message and "--stablesr-vae or $ASD_STABLESR_VAE" in message


@pytest.fixture(scope="module")
def released_files(tmp_path_factory):
    """Files in the released layout (tiny configuration, random weights), as the paper profile reads them."""
    torch.manual_seed(5)
    return save_released(build_networks(TINY), tmp_path_factory.mktemp("stablesr-files"))


def test_the_paper_profile_runs_on_the_released_files_and_names_them(tmp_path, released_files):
    out = tmp_path / "paper"
    api.run(RunSpec("fstd", "paper", backbone="stablesr", stablesr_ckpt=str(released_files["stablesr"]),
                    stablesr_vae=str(released_files["cfw"]), size=(256, 256), out=out, **FAST))
    stage2 = results(out)["weights"]["stage2"]
    assert stage2["files"] == {"stablesr": str(released_files["stablesr"]), "cfw": str(released_files["cfw"])}
    assert str(released_files["stablesr"]) in stage2["weights"] and "tiny configuration" in stage2["model"]


def test_weights_lists_both_files_with_their_sha256(released_files):
    paths = RunSpec("fstd", stablesr_ckpt=str(released_files["stablesr"]),
                    stablesr_vae=str(released_files["cfw"])).weight_paths()
    listing, _ = api.weights("paper", paths)
    for path in released_files.values():
        assert hashlib.sha256(path.read_bytes()).hexdigest() in listing and str(path) in listing
