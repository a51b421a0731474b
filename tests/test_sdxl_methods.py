"""The bucket and MultiDiffusion methods on SDXL, written once for both base models: each reads its
buckets, MultiDiffusion's view and whether ARAD's LoRA applies from the run's base-model entry."""

from __future__ import annotations

import pytest
import torch

from helpers import CPU, one_thread

from baselines.base_models import DEFAULT_MODEL, base_models, get_base_model
from baselines.base_models.sdxl import SDXL_BUCKETS
from baselines.models import WeightPaths
from baselines.registry import LoadContext, Method, RegistrationError, get_method, in_plan
from baselines.settings import Seeds, Settings, nearest_bucket
from benchmark import guard
from benchmark.regression import identity
from benchmark.reporting.all_methods import OWN_INPUTS_TITLE
from benchmark.spec import RunSpec
from datasets_build.sizes import ARAD_BUCKETS

SEEDS = Seeds(3, 4, 5)


def sampler(name: str, model: str, steps=(1, 1), paths=WeightPaths()):
    method = get_method(name)
    return method.load(method, LoadContext("tiny", Settings(*steps), CPU, paths, model))


def test_sdxl_buckets_are_its_papers_about_a_megapixel_in_64_px_steps_and_sd21s_are_arads():
    assert len(SDXL_BUCKETS) == 40 and len(set(SDXL_BUCKETS)) == 40 and (1024, 1024) in SDXL_BUCKETS
    assert all(h % 64 == 0 and w % 64 == 0 and 0.9 <= h * w / 1024 ** 2 <= 1.0 for h, w in SDXL_BUCKETS)
    ratios = [h / w for h, w in SDXL_BUCKETS]
    assert ratios == sorted(ratios) and ratios[0] == 1 / 4 and ratios[-1] == 4
    assert (704, 1344) in SDXL_BUCKETS and (1344, 704) not in SDXL_BUCKETS  # as the paper's table prints it
    assert get_base_model("sdxl").buckets == SDXL_BUCKETS and get_base_model("sdxl").multi_aspect
    sd21 = get_base_model("sd21")
    assert sd21.buckets == tuple((s.height, s.width) for s in ARAD_BUCKETS) and not sd21.multi_aspect


@pytest.mark.parametrize("model", ["sd21", "sdxl"])
def test_the_bucket_rule_is_eq_1_over_the_models_own_list(model):
    buckets = get_base_model(model).buckets
    for h, w in [(256, 1024), (1000, 1000), (777, 333), (2048, 4096), (64, 4000), (1344, 704)]:
        chosen = nearest_bucket((h, w), buckets)
        assert abs(chosen[0] / chosen[1] - h / w) == min(abs(b[0] / b[1] - h / w) for b in buckets)
        assert chosen == next(b for b in buckets if abs(b[0] / b[1] - h / w) == abs(chosen[0] / chosen[1] - h / w))
    assert all(nearest_bucket(bucket, buckets) == bucket for bucket in buckets)
    assert nearest_bucket((256, 1024)) == nearest_bucket((256, 1024), get_base_model("sd21").buckets)


def test_asd_on_sdxl_is_sdxl_at_its_bucket_without_lora_and_says_so():
    with one_thread():
        asd = sampler("asd", "sdxl")
        image, record = asd("a lighthouse", (200, 712), SEEDS)
        plus, plus_record = sampler("sr-tile-plus", "sdxl")("a lighthouse", (200, 712), SEEDS)
    assert image.shape[-2:] == (200, 712)
    stage1 = record.stage1
    assert stage1.size == nearest_bucket((200, 712), SDXL_BUCKETS) == (512, 1856)  # ratio 0.281: 0.276
    assert stage1.details["model"] == "SDXL (no ARAD LoRA: trained on aspect buckets)"
    assert plus_record.stage1.details["model"] == "SDXL"
    assert "SDXL's 40 training buckets" in stage1.details["size_rule"]
    described = asd.describe()
    assert described["lora"] is None and "trained on its aspect buckets" in described["lora_note"]
    assert "lora_note" not in sampler("sr-tile-plus", "sdxl").describe()
    assert torch.equal(image, plus)  # no LoRA, the same stages: the same image as sr-tile-plus


def test_a_lora_given_for_asd_on_sdxl_is_refused_not_ignored(tmp_path):
    with pytest.raises(ValueError, match="trained on aspect buckets.*drop --lora"):
        sampler("asd", "sdxl", paths=WeightPaths(lora=str(tmp_path)))


@pytest.mark.parametrize("model, view", [("sd21", 64), ("sdxl", 128)])
def test_multidiffusion_views_are_the_models_native_latent_at_an_eighth_stride(model, view):
    size = (256, 8 * (view + view // 8))  # one view high, two views wide
    with one_thread():
        _, record = sampler("md", model)("a lighthouse", size, SEEDS)
    tiling = record.stage1.details["tiling"]
    assert (tiling["tile"], tiling["tile"] - tiling["overlap"]) == (view, view // 8)
    assert record.stage1.tile_evaluations == 2  # two views, one step


def test_only_the_arad_methods_stay_on_sd21_and_are_refused_on_sdxl_naming_their_models():
    on_sdxl = {name for name in in_plan("tiny") if "sdxl" in get_method(name).model_names}
    assert {"sr-plus", "sr-tile", "sr-tile-plus", "asd", "md"} <= on_sdxl
    for name in ("ar-plus", "ar-tile"):
        with pytest.raises(ValueError, match=f"^method {name} runs on the model sd21, not 'sdxl'$"):
            get_method(name).check_model("sdxl")


def test_the_tiny_suite_runs_each_method_on_each_of_its_models_small_off_the_default():
    steps = [RunSpec.from_record(step["spec"]) for step in guard.suite("tiny") if step["verb"] == "run"]
    pairs = {(spec.method, spec.model) for spec in steps if spec.backbone is None}
    assert pairs == {(name, model) for name in in_plan("tiny")
                     for model in get_method(name).suite_models or get_method(name).model_names
                     if get_base_model(model).suite is not None}  # None: another model's steps hold its code
    assert {model for name, model in pairs if name == "asd"} == {"sd21", "sdxl", "flux"}
    assert {model for name, model in pairs if name in ("sr-tile", "sr-tile-plus")} == {"sd21"}  # asd holds the rest
    with pytest.raises(RegistrationError, match="suite model 'flux' \\(not among its models\\)"):
        Method("on-sd21", "a method", lambda method, context: None, suite_models=("flux",))
    for spec in steps:
        if spec.backbone is None:  # every model's own suite fields; StableSR's steps are stage II's own
            wanted = {key: value for key, value in get_base_model(spec.model).suite.items()}
            assert {key: getattr(spec, key) for key in wanted} == {k: tuple(v) if isinstance(v, list) else v
                                                                   for k, v in wanted.items()}
    assert all(model == DEFAULT_MODEL or base_models()[model].suite.get("limit") == 1
               for _, model in pairs)


def test_run_identities_name_a_model_other_than_the_default_only():
    assert identity({"method": "asd", "profile": "tiny"}) == "asd/tiny"
    assert identity({"method": "asd", "profile": "tiny", "model": "sd21"}) == "asd/tiny"
    assert identity({"method": "asd", "profile": "tiny", "model": "sdxl"}) == "asd/tiny/sdxl"


def test_tables_plans_each_models_table_at_its_sides_and_model_restricts_to_one():
    from benchmark.reporting.paper_runs import specs

    def planned(profile, model=None):
        return {(s.method, s.model, s.size) for s in specs(RunSpec("?", profile), loras={}, model=model)}

    sdxl = planned("paper-arch", "sdxl")
    assert sdxl == {(name, "sdxl", (side, side)) for side in (2048, 4096)
                    for name in ("sr-plus", "sr-tile", "sr-tile-plus", "asd", "md", "hidiffusion", "scalecrafter",
                                 "demofusion")}
    assert {size for _, _, size in planned("tiny", "sdxl")} == {(512, 512), (1024, 1024)}
    everything = planned("tiny")
    assert planned("tiny", "sdxl") <= everything and ("ar-plus", "sd21", (256, 256)) in everything
    assert not {run for run in planned("tiny", "sd21") if run[1] != "sd21"}


def test_tables_model_sdxl_runs_and_reports_sdxls_table_alone(tmp_path, monkeypatch, asd_cache):
    from benchmark import api
    from benchmark.reporting import paper_runs

    monkeypatch.setitem(paper_runs.MODEL_TABLE_SCALES, "tiny", (0.25,))  # 256²: seconds, not minutes
    monkeypatch.setattr(paper_runs, "with_row", lambda row: ("sr-plus", "md", "ar-plus") if row == "table1" else ())
    with one_thread():
        (report,) = api.tables("tiny", limit=2, runs=tmp_path / "runs", reports=tmp_path / "reports", log=print,
                               model="sdxl")
    text = report.read_text()
    section = text.split("### SDXL (`sdxl`) on ")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| 256×256")]
    assert [row.split("|")[2].strip() for row in rows] == ["sr-plus", "md"]  # ar-plus does not run on SDXL
    cells = [[cell.strip() for cell in row.split("|")[3:9]] for row in rows]  # FID, KID, patch FID/KID, IS, CLIP
    # --size keeps the set's images as references: FID and KID with intervals; a 256² image holds no 299-px crop
    assert all("[" in row[0] and "[" in row[1] and row[2:4] == ["skipped"] * 2 and "[" in row[4] and "[" in row[5]
               for row in cells)
    assert "smaller than the 299-px crop" in section and "no reference images" not in section
    assert "base model (stage I): sdxl" in section and "Not run: `python -m benchmark tables --model sd21`" in text
    table1 = text.split("## Table 1")[1].split("## Table 2")[0]
    assert "sdxl" not in table1  # the paper's tables hold SD 2.1's runs only
    # a run at a size of its own is not one of the set's own items: listed on its own, not in "All methods"
    assert "No run on a data set" in text.split("## All methods, per data set")[1].split("\n## ")[0]
    own = text.split(f"\n## {OWN_INPUTS_TITLE}")[1]
    assert "| sr-plus " in own and "| md " in own
