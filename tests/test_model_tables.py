"""The model-profile reports: Tables 1, 2, 3 and Figure 7 beside the paper's figures.

Runs are synthesised from one real tiny results.json (tests/fixtures) plus the scoring
schema, so the tables are tested without running models; one real tiny run checks that a
fresh results.json renders end to end.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from benchmark import api
from benchmark.reporting import paper
from benchmark.reporting import stage2_tables as stage2
from benchmark.reporting.paper_runs import FIGURE7_SIDES, specs, table3_out
from benchmark.reporting.model_tables import memory_points, table1, table2, table3, trained_ratios
from benchmark.reporting.stage2_tables import stage2_tables
from benchmark.runs.records import write_json
from benchmark.reporting.report import write_report
from benchmark.spec import RunSpec

REAL = json.loads((Path(__file__).parent / "fixtures" / "tiny_asd_results.json").read_text())
COCO = {"name": "ma-coco", "folder": "data/ma-coco", "manifest_hash": "c0c0" * 16, "items": 21}
LAION = {"name": "ma-laion-coco", "folder": "data/ma-laion-coco", "manifest_hash": "1a10" * 16,
         "items": 21}
CONVENTIONS = {"fid": {"library": "clean-fid", "mode": "clean", "model": "inception-v3",
                       "pretrained": None, "random_weights": True},
               "clip_score": {"library": "open_clip", "mode": None, "model": "ViT-B-32",
                              "pretrained": "laion2b_s34b_b79k", "random_weights": False}}
SYNTH = {"name": "synthetic", "folder": "cache/synthetic", "manifest_hash": "5e5e" * 16, "items": 21}
ARAD = ("ar-plus", "ar-tile", "asd")


def scores(fid=50.0, inception=3.0, clip=25.0, seam=1.01, per_ratio=None, skipped=None) -> dict:
    return {"fid": fid, "inception_score": inception, "clip_score": clip, "psnr_y": None,
            "ssim_y": None, "lpips": None, "seam_score": seam, "fid_per_ratio": per_ratio or {},
            "skipped": skipped or {}}


def make_run(method: str, sizes=((512, 512),), dataset=SYNTH, scored: dict | None = None,
             buckets: int | None = 9, samples: int | None = None, date="2026-11-24T17:29:59+00:00",
             seed=0, memory_mib=1000.0, seconds=2.0) -> dict:
    """A results.json of ``method`` shaped like the real tiny one, with the scoring keys."""
    run = copy.deepcopy(REAL)
    stage2 = method not in ("sr-plus", "ar-plus", "md")
    run.update(method=method, seed=seed, samples=samples or len(sizes), seconds_per_image=seconds,
               peak_memory_mib=max(memory_mib * (h * w) / 512 ** 2 for h, w in sizes))
    run["environment"]["date"] = date
    if not stage2:
        run["weights"].pop("stage2")
        run.update(backbone=None, sr_steps=None, sr_tiling=None)
    if method in ARAD:
        run["lora"]["trained_buckets"] = run["lora"]["trained_buckets"][:buckets] if buckets else None
    else:
        run["lora"] = None
    run["per_image"] = [dict(REAL["per_image"][0], index=i, size=list(size), seconds=seconds,
                             peak_memory_mib=memory_mib * (size[0] * size[1]) / 512 ** 2)
                        for i, size in enumerate(sizes)]
    if scored is not None:
        run.update(scores=scored, metric_conventions=CONVENTIONS, dataset=dataset,
                   metrics_profile="tiny")
    elif dataset is not None:
        run["dataset"] = dataset
    return run


def rows(text: str, heading: str) -> dict[str, list[str]]:
    """The markdown table under ``heading`` as {first cell: cells}."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    table = lines[start + 2:end]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    return {row[0]: row for row in cells}


def header(text: str, heading: str) -> list[str]:
    block = text.split(heading, 1)[1]
    line = next(line for line in block.splitlines() if line.startswith("|"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_table1_has_every_method_paper_figures_and_not_run_rows():
    text = table1([make_run("asd", dataset=COCO, scored=scores(fid=61.5, seam=1.004)),
                   make_run("sr-tile", dataset=COCO, scored=scores())])
    heading = "Table 1 — full pipeline: MA-COCO (manifest c0c0c0c0c0c0) at 512×512"
    table = rows(text, heading)
    assert list(table) == ["sr-plus", "sr-tile", "sr-tile-plus", "ar-plus", "ar-tile", "asd"]
    columns = header(text, heading)
    asd = dict(zip(columns, table["asd"]))
    assert asd["FID↓"] == "61.50" and asd["seam score"] == "1.004" and asd["paper FID↓"] == "85.34"
    assert asd["ratio"] == "A" and asd["overlap"] == "implicit" and asd["paper max res."] == "18432²"
    assert asd["peak memory (GiB)"] == "0.98" and asd["s / image"] == "2.00"
    assert dict(zip(columns, table["sr-plus"]))["FID↓"] == "not run"
    assert dict(zip(columns, table["sr-plus"]))["paper FID↓"] == "118.83"
    # the paper's own data set gets its table even though nothing ran on it
    assert "MM-CelebA-HQ: not run" in text and "- no runs: every row is not run" in text


def test_unscored_runs_say_not_scored_and_skipped_metrics_give_their_reason():
    old = make_run("asd")  # a run made with --no-score (or before scoring): no scores
    assert "scores" not in old
    skipped = make_run("sr-tile", scored=scores(fid=None, skipped={"fid": "no reference images"}))
    text = table1([old, skipped])
    heading = "Table 1 — full pipeline: synthetic (manifest 5e5e5e5e5e5e) at 512×512"
    columns, table = header(text, heading), rows(text, heading)
    assert dict(zip(columns, table["asd"]))["FID↓"] == "not scored"
    assert dict(zip(columns, table["asd"]))["s / image"] == "2.00"  # still measured
    assert dict(zip(columns, table["sr-tile"]))["FID↓"] == "skipped"
    assert "sr-tile: fid skipped: no reference images" in text
    assert "1 of 2 runs not scored" in text


def test_provenance_names_profile_device_commit_weights_conventions_and_data():
    text = table1([make_run("asd", dataset=COCO, scored=scores())])
    assert "- profile: tiny" in text and "device: CPU (x86_64" in text
    assert f"commit: {REAL['environment']['git']['commit'][:12]}" in text and "date: 2026-11-24" in text
    assert "random weights: not image quality" in text and "stage1 tiny/sd21 (random (seed 0" in text
    assert "backbone (stage II): SD x4 upscaler" in text and "ARAD LoRA rank 4, 9 trained buckets" in text
    assert "fid: library clean-fid, mode clean, model inception-v3, random weights" in text
    assert "clip_score: library open_clip, model ViT-B-32, pretrained laion2b_s34b_b79k" in text
    assert "ma-coco (21 items, manifest c0c0c0c0c0c0" in text
    assert "steps (stage I/stage II): asd 4/8;" in text and "memory: process peak RSS" in text


def test_groups_split_by_data_set_and_sizes_and_a_cell_picks_most_images_then_newest():
    runs = [make_run("asd", scored=scores(fid=1.0), date="2026-01-01T00:00:00+00:00"),
            make_run("asd", scored=scores(fid=2.0), date="2026-02-01T00:00:00+00:00"),
            make_run("asd", sizes=((512, 512),) * 2, scored=scores(fid=3.0), seed=7,
                     date="2025-01-01T00:00:00+00:00"),
            make_run("asd", sizes=((256, 1024),), scored=scores(fid=4.0))]
    text = table1(runs)
    assert text.count("### Table 1") == 3  # 512×512, 256×1024, and the paper's MM-CelebA-HQ
    first = "Table 1 — full pipeline: synthetic (manifest 5e5e5e5e5e5e) at 512×512"
    assert dict(zip(header(text, first), rows(text, first)["asd"]))["FID↓"] == "3.00"
    assert "asd: 3 runs fit; shown the one with the most images, then newest (seed 7" in text
    wide = "synthetic (manifest 5e5e5e5e5e5e) at 256×1024"
    assert dict(zip(header(text, wide), rows(text, wide)["asd"]))["FID↓"] == "4.00"


def test_table2_one_table_per_data_set_with_the_papers_figures_and_per_size_fid():
    runs = [make_run("sr-plus", dataset=COCO, scored=scores(fid=44.0, per_ratio={"512x512": 44.5})),
            make_run("md", dataset=COCO, scored=scores(fid=45.0)),
            make_run("ar-plus", dataset=LAION, scored=scores(fid=14.5))]
    text = table2(runs)
    coco = "Table 2 — stage I alone: MA-COCO (manifest c0c0c0c0c0c0) at 512×512"
    laion = "Table 2 — stage I alone: MA-LAION-COCO (manifest 1a101a101a10) at 512×512"
    assert text.index(laion) < text.index(coco)  # the paper's order
    table, columns = rows(text, coco), header(text, coco)
    assert list(table) == ["SD 2.1 (sr-plus)", "MD 2.1 (md)", "ARAD (ar-plus)"]
    assert dict(zip(columns, table["MD 2.1 (md)"]))["FID↓"] == "45.00"
    assert dict(zip(columns, table["MD 2.1 (md)"]))["paper FID↓"] == "43.25"
    assert dict(zip(columns, table["ARAD (ar-plus)"]))["FID↓"] == "not run"
    assert dict(zip(columns, table["ARAD (ar-plus)"]))["paper CLIP↑"] == "31.x"
    assert re.search(r"\| 512x512 \| 44.50 +\| – +\| – +\|", text)
    laion_rows = rows(text, laion)
    assert dict(zip(columns, laion_rows["ARAD (ar-plus)"]))["paper FID↓"] == "13.98"


def test_table2_on_prompts_has_no_paper_figures_and_the_paper_data_sets_still_show():
    text = table2([make_run("sr-plus")])
    assert "The paper has no figures for this data set" in text
    assert "MA-LAION-COCO: not run" in text and "MA-COCO: not run" in text
    assert "14.32" in text and "42.50" in text


def test_table3_groups_ar_plus_by_the_loras_trained_buckets():
    runs = [make_run("ar-plus", dataset=COCO, scored=scores(fid=41.0), buckets=3),
            make_run("ar-plus", dataset=COCO, scored=scores(fid=40.0), buckets=9),
            make_run("ar-plus", dataset=COCO, scored=scores(fid=39.0), buckets=7),
            make_run("ar-plus", dataset=COCO, scored=scores(fid=38.0), buckets=None),
            make_run("asd", dataset=COCO, scored=scores(fid=1.0), buckets=5)]  # not ar-plus
    assert [trained_ratios(r) for r in runs] == [3, 9, 7, None, 5]
    text = table3(runs)
    heading = "Table 3 — ARAD by trained ratios: MA-COCO (manifest c0c0c0c0c0c0) at 512×512"
    table, columns = rows(text, heading), header(text, heading)
    assert list(table) == ["3 ratios", "5 ratios", "7 ratios", "9 ratios", "untrained LoRA"]
    fid = {label: dict(zip(columns, cells))["FID↓"] for label, cells in table.items()}
    assert fid == {"3 ratios": "41.00", "5 ratios": "not run", "7 ratios": "39.00",
                   "9 ratios": "40.00", "untrained LoRA": "38.00"}
    paper_fid = {label: dict(zip(columns, cells))["paper FID↓"] for label, cells in table.items()}
    assert paper_fid == {"3 ratios": "41.28", "5 ratios": "40.25", "7 ratios": "–",
                         "9 ratios": "40.28", "untrained LoRA": "–"}
    assert "MA-LAION-COCO: not run" in text and "33.x" in text


def test_memory_table_and_plot_have_one_point_per_method_and_square_size(tmp_path):
    runs = [make_run("sr-plus", sizes=((1024, 1024),)), make_run("sr-plus", sizes=((1024, 1024),)),
            make_run("sr-plus", sizes=((2048, 2048),), memory_mib=500),
            make_run("asd", sizes=((512, 512), (1024, 1024), (768, 1024)))]
    assert set(memory_points(runs)) == {("sr-plus", 1024), ("sr-plus", 2048), ("asd", 512),
                                        ("asd", 1024)}
    for index, run in enumerate(runs):
        write_json(tmp_path / "runs" / str(index) / "results.json", run)
    written = write_report(tmp_path / "runs", tmp_path / "reports")
    assert written == [tmp_path / "reports" / "tiny.md"]
    text = written[0].read_text()
    figure7 = text.split("### Figure 7", 1)[1].split("\n## ", 1)[0]  # the next section has its own tables
    table = [line for line in figure7.splitlines() if line.startswith("| ")][1:]
    points = [tuple(cell.strip() for cell in line.strip("|").split("|")) for line in table]
    assert [p[:2] for p in points] == [("sr-plus", "1024×1024"), ("sr-plus", "2048×2048"),
                                       ("sr-plus", "4096×4096"), ("asd", "512×512"),
                                       ("asd", "1024×1024"), ("asd", "2048×2048"),
                                       ("asd", "18432×18432")]
    assert points[0][2:] == ("3.91", "2.00", "17.45") and points[1][2:] == ("7.81", "2.00", "31.69")
    assert points[2][2:] == ("not run", "not run", "out of memory (32 GB)")
    assert points[6][4] == "runs (no figure given)" and points[3][4] == "–"
    assert "sr-plus at 1024²: 2 runs fit" in text
    assert (tmp_path / "reports" / "figures" / "tiny-memory.png").stat().st_size > 0
    assert "![peak memory against resolution](figures/tiny-memory.png)" in text


def test_every_paper_table_appears_with_every_method_not_run(tmp_path):
    write_json(tmp_path / "runs" / "a" / "results.json", dict(make_run("md"), profile="paper-arch"))
    [path] = write_report(tmp_path / "runs", tmp_path / "reports")
    text = path.read_text()
    assert path.name == "paper-arch.md" and "Profile `paper-arch`: the published architectures" in text
    for method in paper.TABLE1:
        assert f"| {method} " in text
    for name in ("Table 1 — full pipeline", "Table 2 — stage I alone", "Table 3 — ARAD",
                 "Figure 7 — peak memory"):
        assert f"## {name}" in text
    for figure in ("118.83", "85.34", "14.57", "40.28", "14.36", "17.45", "27.73"):
        assert figure in text
    assert not (tmp_path / "reports" / "oracle.md").exists()


def test_a_real_tiny_run_renders_end_to_end(tmp_path):
    """A run on the default data set lands in Table 1; a run at a replaced size only in Figure 7."""
    runs = tmp_path / "runs"
    api.run(RunSpec("sr-plus", limit=1, progress=False, out=runs / "sr-plus"))
    api.run(RunSpec("sr-plus", limit=1, size=(64, 64), progress=False, score=False, out=runs / "sr-plus-64"))
    assert api.report(runs, tmp_path / "reports") == [tmp_path / "reports" / "tiny.md",
                                                      tmp_path / "reports" / "site" / "index.html"]
    text = (tmp_path / "reports" / "tiny.md").read_text()
    heading = next(line[4:] for line in text.splitlines()
                   if line.startswith("### Table 1") and "synthetic" in line)
    assert "256×1024" in heading and "64×64" not in text.split("## Figure 7")[0]
    row = dict(zip(header(text, heading), rows(text, heading)["sr-plus"]))
    assert row["images"] == "1" and row["s / image"] != "not run"
    assert row["FID↓"] not in ("not run", "not scored") and row["paper FID↓"] == "118.83"
    assert ("sr-plus", 64) in memory_points([json.loads((runs / "sr-plus-64" / "results.json").read_text())])

def test_tables_1_and_2_show_the_nine_ratio_arad_and_leave_3_and_5_to_table3():
    nine = make_run("ar-plus", buckets=9, scored=scores(fid=10.0), date="2026-01-01T00:00:00+00:00")
    three = make_run("ar-plus", buckets=3, scored=scores(fid=30.0), date="2026-02-01T00:00:00+00:00")
    heading = "Table 1 — full pipeline: synthetic (manifest 5e5e5e5e5e5e) at 512×512"
    text = table1([nine, three])
    assert dict(zip(header(text, heading), rows(text, heading)["ar-plus"]))["FID↓"] == "10.00"
    assert "30.00" in table3([nine, three])


X4_TILINGS = {"nonoverlap": {"strategy": "nonoverlap", "tile": 128, "weighting": "gaussian"},
              "explicit": {"strategy": "explicit", "tile": 128, "overlap": 64, "weighting": "gaussian"},
              "implicit": {"strategy": "implicit", "tile": 128, "offset": "random", "offset_range": 64,
                           "reset_every": 4, "fill": "eps", "weighting": "gaussian"}}


def fstd_run(tiling: dict, psnr=20.0, seconds=2.0, calls=24.0, backbone="SD x4 upscaler", factor=4,
             extra: dict | None = None, **kwargs) -> dict:
    """An fstd results.json on the x4 upscaler (latent factor 4) with ``tiling`` in its latent px."""
    run = make_run("fstd", seconds=seconds, **kwargs)
    run["weights"].pop("stage1")
    run["weights"]["stage2"]["latent_factor"] = factor
    run.update(backbone=backbone, steps=None, lora=None, sr_tiling=dict(tiling, tile_batch_size=1),
               stage2_denoiser_calls_per_image=calls)
    if "scores" in run:
        run["scores"].update(psnr_y=psnr, ssim_y=0.5, lpips=0.25, clip_score=None, **(extra or {}))
    return run


def three_tilings(**kwargs) -> list[dict]:
    return [fstd_run(X4_TILINGS["nonoverlap"], psnr=20.0, seconds=2.0, calls=16, scored=scores(), **kwargs),
            fstd_run(X4_TILINGS["explicit"], psnr=21.0, seconds=5.0, calls=48, scored=scores(), **kwargs),
            fstd_run(X4_TILINGS["implicit"], psnr=22.0, seconds=2.5, calls=16, scored=scores(), **kwargs)]


def cells(text: str, heading: str, first: str) -> dict[str, str]:
    return dict(zip(header(text, heading), rows(text, heading)[first]))


def test_tables_4_6_7_put_the_three_fstd_tilings_beside_the_papers_figures():
    text = stage2_tables(three_tilings())
    block = text.split("### stage II alone, backbone SD x4 upscaler: synthetic (manifest 5e5e5e5e5e5e) at 512×512", 1)[1]
    table4 = block.split("#### Table 4", 1)[1]
    assert list(rows(table4, "tiling strategies")) == ["untiled (reference)", "no overlap", "explicit overlap 32",
                                                      "implicit, fixed offset", "implicit, random offset"]
    nonoverlap = cells(table4, "tiling strategies", "no overlap")
    explicit = cells(table4, "tiling strategies", "explicit overlap 32")
    implicit = cells(table4, "tiling strategies", "implicit, random offset")
    assert (nonoverlap["PSNR-Y↑"], nonoverlap["paper PSNR↑"], nonoverlap["paper s / image"]) == ("20.00", "26.89", "75.08")
    assert (explicit["PSNR-Y↑"], explicit["paper PSNR↑"], explicit["paper s / image"]) == ("21.00", "27.49", "166.8")
    assert (implicit["PSNR-Y↑"], implicit["paper PSNR↑"], implicit["paper s / image"]) == ("22.00", "27.53", "75.19")
    assert implicit["paper FID↓"] == "22.25" and implicit["paper LPIPS↓"] == "≈ 0.08"
    assert explicit["time ÷ no overlap"] == "2.50" and explicit["paper time ÷ no overlap"] == "2.22"
    assert explicit["denoiser calls / image"] == "48" and implicit["SSIM-Y↑"] == "0.500"
    assert implicit["LPIPS↓"] == "0.250" and implicit["FID↓"] == "50.00" and implicit["seam score"] == "1.010"
    assert implicit["peak memory (GiB)"] == "0.98" and implicit["s / image"] == "2.50"
    assert cells(table4, "tiling strategies", "implicit, fixed offset")["PSNR-Y↑"] == "not run"
    assert cells(table4, "tiling strategies", "implicit, fixed offset")["paper PSNR↑"] == "26.83"
    table6 = block.split("#### Table 6", 1)[1]
    assert cells(table6, "offset range", "implicit, offset range 32")["PSNR-Y↑"] == "22.00"
    assert cells(table6, "offset range", "implicit, offset range 16")["PSNR-Y↑"] == "not run"
    assert [cells(table6, "offset range", f"implicit, offset range {r}")["paper s / image"]
            for r in (16, 32, 48)] == ["75.39", "75.19", "75.21"]
    table7 = block.split("#### Table 7", 1)[1]
    zero = f"explicit, overlap 0: {stage2.NO_OVERLAP_STANDS_IN}"
    assert cells(table7, "explicit overlap", zero)["PSNR-Y↑"] == "20.00"
    assert cells(table7, "explicit overlap", "explicit, overlap 32")["PSNR-Y↑"] == "21.00"
    columns = header(table7, "explicit overlap")
    paper7 = [dict(zip(columns, row)) for row in rows(table7, "explicit overlap").values()]
    assert [row["paper PSNR↑"] for row in paper7] == ["26.89", "27.50", "27.49", "27.64"]
    assert [row["paper s / image"] for row in paper7] == ["75.1", "148.7", "166.8", "182.6"]
    assert "backbone (stage II): SD x4 upscaler" in block and "random weights: not image quality" in block
    assert "MM-CelebA-HQ: not run" in text  # the paper's data set gets its block


def test_tables_4_6_7_are_per_backbone_and_in_the_papers_units():
    x4 = fstd_run(X4_TILINGS["implicit"], psnr=22.0, scored=scores())
    # a factor-8 backbone's 64 / 32 latent px are the paper's own units; 16 is the paper's range 16
    eight = fstd_run(dict(X4_TILINGS["implicit"], tile=64, offset_range=16), psnr=23.0, backbone="StableSR",
                     factor=8, scored=scores())
    odd = fstd_run(dict(X4_TILINGS["implicit"], offset_range=33), scored=scores())  # 33·4/8: no paper row
    assert stage2.paper_units(x4) == {"strategy": "implicit", "tile": 64, "offset": "random", "offset_range": 32,
                                      "reset_every": 4, "fill": "eps", "weighting": "gaussian"}
    assert stage2.paper_units(odd) is None
    text = stage2_tables([x4, eight, odd])
    x4_block = text.split("backbone SD x4 upscaler: synthetic")[1].split("\n### ")[0]
    eight_block = text.split("backbone StableSR: synthetic")[1].split("\n### ")[0]
    assert cells(x4_block, "#### Table 6", "implicit, offset range 32")["PSNR-Y↑"] == "22.00"
    assert cells(eight_block, "#### Table 6", "implicit, offset range 16")["PSNR-Y↑"] == "23.00"
    assert cells(eight_block, "#### Table 6", "implicit, offset range 32")["PSNR-Y↑"] == "not run"
    assert "1 fstd run(s) with tilings outside the paper's rows are not shown" in x4_block


def test_kid_and_patch_scores_get_columns_where_runs_have_them():
    runs = [fstd_run(X4_TILINGS["implicit"], scored=scores(), extra={"kid": 0.01234, "kid_std": 0.002,
                                                                    "fid_patch": 33.3, "kid_patch": None})]
    runs[0]["metric_conventions"]["kid"] = {"library": "benchmark.metrics.kid", "mode": "clean", "subsets": 100,
                                            "subset_size": 3, "random_weights": True}
    text = stage2_tables(runs).split("synthetic (manifest", 1)[1]
    assert "kid: library benchmark.metrics.kid, mode clean, 100 subsets of 3, random weights" in text
    row = cells(text, "#### Table 4", "implicit, random offset")
    assert (row["KID↓"], row["patch FID↓"], row["patch KID↓"]) == ("0.0123 ± 0.0020", "33.30", "skipped")
    assert "KID↓" not in stage2_tables(three_tilings())
    with_kid = make_run("asd", scored=dict(scores(), kid=0.5))
    heading = "Table 1 — full pipeline: synthetic (manifest 5e5e5e5e5e5e) at 512×512"
    assert cells(table1([with_kid]), heading, "asd")["KID↓"] == "0.5000"
    assert cells(table1([with_kid]), heading, "sr-plus")["KID↓"] == "not run"


def test_a_report_from_an_asd_run_alone_carries_the_papers_tables_4_6_7(tmp_path):
    write_json(tmp_path / "runs" / "a" / "results.json", make_run("asd", scored=scores()))
    [path] = write_report(tmp_path / "runs", tmp_path / "reports")
    text = path.read_text()
    section = text.split("## Tables 4, 6, 7 — stage II alone", 1)[1].split("## Figure 7")[0]
    for figure in ("26.89", "27.49", "27.53", "75.08", "166.8", "75.19", "75.39", "148.7", "182.6"):
        assert f"| {figure} " in section
    assert "MM-CelebA-HQ: not run" in section and "| not run " in section


def test_a_report_from_fstd_runs_alone_is_written_with_their_tables(tmp_path):
    for index, run in enumerate(three_tilings()):
        write_json(tmp_path / "runs" / str(index) / "results.json", run)
    [path] = write_report(tmp_path / "runs", tmp_path / "reports")
    text = path.read_text()
    assert path.name == "tiny.md"
    block = text.split("backbone SD x4 upscaler: synthetic", 1)[1]
    implicit = cells(block, "#### Table 4", "implicit, random offset")
    assert implicit["PSNR-Y↑"] == "22.00" and implicit["paper PSNR↑"] == "27.53"
    assert "fstd" not in text.split("## Figure 7")[1]  # stage II alone is not a Figure 7 pipeline


def test_the_tables_verb_makes_the_fstd_runs_of_the_three_tilings(tmp_path):
    common = RunSpec("?", "tiny", dataset="synthetic", runs=tmp_path, progress=False)
    made = specs(common)
    fstd = [spec for spec in made if spec.method == "fstd"]
    assert [spec.tiling for spec in fstd] == ["nonoverlap", "explicit", "implicit"]
    assert all(spec.dataset == "synthetic" and spec.runs == tmp_path and spec.size is None for spec in fstd)
    # Tables 1 and 2 and the "All methods" table's others on the data set, Figure 7 at square sides, Table 3
    # only for the LoRAs given
    assert [spec.method for spec in made if spec.size is None and spec.tiling is None] == [
        "sr-plus", "sr-tile", "sr-tile-plus", "ar-plus", "ar-tile", "asd", "md", "hidiffusion", "scalecrafter",
        "demofusion"]
    figure7 = [(spec.method, spec.size, spec.limit) for spec in made if spec.size and spec.limit == 1]
    assert {spec.model for spec in made if spec.size and spec.limit is None} == {"sd21", "sdxl", "flux", "flux-schnell"}
    assert figure7 == [(name, (side, side), 1) for side in FIGURE7_SIDES["tiny"]
                       for name in ("sr-plus", "sr-tile", "sr-tile-plus", "ar-plus", "ar-tile", "asd", "md",
                                    "hidiffusion", "scalecrafter", "demofusion")]
    assert all(spec.lora is None for spec in made)
    with_loras = specs(common, sides=(256,), loras={3: "/loras/3", 5: "/loras/5"})
    table3 = [spec for spec in with_loras if spec.lora]
    assert [(spec.method, spec.lora, spec.out) for spec in table3] == [
        ("ar-plus", f"/loras/{k}", table3_out(tmp_path, "tiny", "synthetic", k)) for k in (3, 5)]
    assert [spec.size for spec in with_loras if spec.size and spec.limit == 1] == [(256, 256)] * 10
    budget = specs(RunSpec("?", "tiny", runs=tmp_path, memory_budget="1GiB"), loras={3: "x"})
    assert [spec.out.name for spec in budget if spec.lora] == ["table3-synthetic-buckets3-mem1GiB"]


def test_real_tiny_fstd_runs_of_the_three_tilings_fill_tables_4_6_7_and_their_pictures(tmp_path):
    runs = tmp_path / "runs"
    for tiling in ("nonoverlap", "explicit", "implicit"):
        api.run(RunSpec("fstd", "tiny", tiling=tiling, limit=1, sr_steps=2, score=False, progress=False, runs=runs))
    api.report(runs, tmp_path / "reports")
    text = (tmp_path / "reports" / "tiny.md").read_text()
    block = text.split("backbone SD x4 upscaler: synthetic", 1)[1].split("\n### ")[0]
    expected = {"no overlap": ("26.89", "75.08"), "explicit overlap 32": ("27.49", "166.8"),
                "implicit, random offset": ("27.53", "75.19")}
    for label, (psnr, seconds) in expected.items():
        row = cells(block, "#### Table 4", label)
        assert row["images"] == "1" and row["PSNR-Y↑"] == "not scored" and row["s / image"] != "not run"
        assert (row["paper PSNR↑"], row["paper s / image"]) == (psnr, seconds)
    assert cells(block, "#### Table 7", "explicit, overlap 32")["images"] == "1"
    assert cells(block, "#### Table 6", "implicit, offset range 32")["images"] == "1"
    assert int(cells(block, "#### Table 4", "explicit overlap 32")["denoiser calls / image"]) > \
        int(cells(block, "#### Table 4", "no overlap")["denoiser calls / image"])
    pictures = sorted(p.name for p in (tmp_path / "reports" / "figures").glob("seams-*.png"))
    assert [name.split("-", 3)[3] for name in pictures] == ["fstd-explicit64-vs-fstd-nonoverlap.png",
                                                            "fstd-implicit-vs-fstd-nonoverlap.png"]
    assert all(f"(figures/{name})" in text for name in pictures)


def test_table3_leaves_out_an_external_lora_whose_buckets_are_unknown():
    external = make_run("ar-plus", dataset=COCO, scored=scores(fid=37.0), buckets=None)
    external["lora"] = {"kind": "external LoRA", "rank": 4, "sha256": "0" * 64}
    untrained = make_run("ar-plus", dataset=COCO, scored=scores(fid=38.0), buckets=None)
    heading = "Table 3 — ARAD by trained ratios: MA-COCO (manifest c0c0c0c0c0c0) at 512×512"
    text = table3([external, untrained])
    fid = {label: dict(zip(header(text, heading), cells))["FID↓"] for label, cells in rows(text, heading).items()}
    assert fid["untrained LoRA"] == "38.00" and "37.00" not in text
    assert "37.00" in table1([external])  # Table 1 still shows it
