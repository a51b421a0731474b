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

from benchmark.reporting import paper
from benchmark.cli import main
from benchmark.reporting.model_tables import memory_points, table1, table2, table3, trained_ratios
from benchmark.runs.records import write_json
from benchmark.reporting.report import write_report

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
    table = [line for line in text.split("### Figure 7", 1)[1].splitlines() if line.startswith("| ")][1:]
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
    assert main(["run", "--method", "sr-plus", "--limit", "1", "--no-progress",
                 "--out", str(runs / "sr-plus")]) == 0
    assert main(["run", "--method", "sr-plus", "--limit", "1", "--size", "64x64", "--no-progress",
                 "--no-score", "--out", str(runs / "sr-plus-64")]) == 0
    assert main(["report", "--runs", str(runs), "--out", str(tmp_path / "reports")]) == 0
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
