"""Ceiling searches and out-of-memory samples in the model reports: Table 1's measured max
res. beside the paper's, Figure 7's trials and OOM cells, and means over finished samples.

The ceiling.json files and runs are written here by hand, in the formats the ceiling search
and the runner write, so the report is tested without running models.
"""

from __future__ import annotations

import copy

from benchmark.reporting.model_tables import table1, table2
from benchmark.reporting.report import write_report
from benchmark.runs.records import write_json
from test_model_tables import COCO, header, make_run, rows, scores

GIB = 1024 ** 3
TABLE1 = "Table 1 — full pipeline: MA-COCO (manifest c0c0c0c0c0c0) at 512×512"
ENFORCED = "RLIMIT_AS: the address space of the process running the trials"
DEVICE, COMMIT = "CPU (x86_64, 2 cores, 2 torch threads)", "abc1234def567890abc1234def567890abc12345"


def ceiling(method: str, found, sides=(512, 1024, 2048, 4096, 8192), budget_gib=4, lower_bound=False,
            memory_mib=800.0) -> dict:
    """A ceiling.json: every side up to ``found`` completed, the rest ran out of memory."""
    trials = [{"side": side, "status": "ok" if found and side <= found else "oom",
               "peak_memory_mib": memory_mib * side / 512, "seconds": 3.0, "reason": None,
               "run_dir": f"runs/ceiling/tiny/{method}-{budget_gib}GiB/trials/{side}x{side}"} for side in sides]
    return {"kind": "ceiling", "method": method, "profile": "tiny",
            "budget": {"bytes": budget_gib * GIB, "text": f"{budget_gib}GiB", "enforced_by": ENFORCED},
            "device": DEVICE, "steps": 1, "sr_steps": 1,
            "note": "one step per stage: memory does not depend on the step count", "step": 512,
            "min_side": min(sides), "max_side": max(sides), "ceiling": found, "ceiling_is_lower_bound": lower_bound,
            "complete": True, "trials": trials, "commit": COMMIT, "date": "2026-12-01T10:00:00+00:00",
            "environment": {"device": DEVICE, "date": "2026-12-01T10:00:00+00:00",
                            "git": {"commit": COMMIT, "dirty": False}}}


def write_ceiling(runs, search: dict):
    write_json(runs / "ceiling" / search["profile"] / f"{search['method']}-{search['budget']['text']}"
               / "ceiling.json", search)


def with_oom(run: dict, failed: set[int], seconds=50.0, memory_mib=4000.0, budget_gib=4) -> dict:
    """``run`` made under a budget, whose samples ``failed`` ran out of memory (at the seconds
    and memory reached); its means over the finished samples, as the runner writes them."""
    run = copy.deepcopy(run)
    for row in run["per_image"]:
        row["status"] = "oom" if row["index"] in failed else "ok"
        if row["index"] in failed:
            row.update(seconds=seconds, peak_memory_mib=memory_mib, image=None)
    done = [row for row in run["per_image"] if row["status"] == "ok"]
    run.update(finished_samples=len(done), oom_samples=len(failed),
               seconds_per_image=sum(row["seconds"] for row in done) / len(done) if done else None,
               peak_memory_mib=max((row["peak_memory_mib"] for row in done), default=None),
               memory_budget={"bytes": budget_gib * GIB, "text": f"{budget_gib}GiB", "enforced_by": ENFORCED})
    return run


def cells(text: str, heading: str, first: str) -> dict[str, str]:
    return dict(zip(header(text, heading), rows(text, heading)[first]))


def test_table1_shows_the_measured_ceiling_beside_the_papers_and_not_measured_where_none():
    searches = [ceiling("asd", 4096), ceiling("ar-tile", 8192, lower_bound=True), ceiling("sr-plus", None)]
    text = table1([make_run("asd", dataset=COCO, scored=scores())], searches)
    asd = cells(text, TABLE1, "asd")
    assert asd["max res."] == "4096² under 4GiB" and asd["paper max res."] == "18432²"
    assert cells(text, TABLE1, "ar-tile")["max res."] == "≥ 8192² under 4GiB"
    assert cells(text, TABLE1, "sr-plus")["max res."] == "none under 4GiB (OOM from 512²)"
    assert cells(text, TABLE1, "sr-plus")["paper max res."] == "2048²"
    assert cells(text, TABLE1, "ar-plus")["max res."] == "not measured"
    # the paper's own data set's table, with no runs, still shows the ceilings
    assert cells(text, "Table 1 — full pipeline: MM-CelebA-HQ: not run", "asd")["max res."] == "4096² under 4GiB"


def test_table1_prefers_the_papers_32_gib_budget_else_the_largest():
    searches = [ceiling("asd", 2048, budget_gib=4), ceiling("asd", 8192, budget_gib=32),
                ceiling("asd", 16384, budget_gib=64), ceiling("sr-tile", 1024, budget_gib=2),
                ceiling("sr-tile", 2048, budget_gib=8)]
    text = table1([make_run("asd", dataset=COCO, scored=scores())], searches)
    assert cells(text, TABLE1, "asd")["max res."] == "8192² under 32GiB"
    assert cells(text, TABLE1, "sr-tile")["max res."] == "2048² under 8GiB"


def test_table1_provenance_names_budget_enforcement_device_commit_and_steps():
    text = table1([make_run("asd", dataset=COCO, scored=scores())], [ceiling("asd", 4096), ceiling("sr-plus", 1024)])
    how = text.split(TABLE1)[1].split("|")[0]
    assert ("- max res. (ours): the largest square side that completed in a ceiling search; largest side "
            "tried: asd 8192, sr-plus 8192") in how
    assert "memory budget per sample: none" in how  # the runs' own: made without a budget
    assert f"- ceiling budget: 4GiB, enforced by {ENFORCED}" in how
    assert ("- ceiling steps (stage I/stage II): asd 1/1, sr-plus 1/1 (one step per stage: memory does "
            "not depend on the step count)") in how
    assert f"- ceiling device: {DEVICE}; commit: abc1234def56; date: 2026-12-01" in how
    assert "- profile: tiny" in how  # the runs' own provenance stays
    assert "- max res. (ours): not measured (no ceiling search on this profile)" in table1([make_run("asd")])


def test_cells_of_a_run_whose_samples_all_ran_out_of_memory_say_oom():
    run = with_oom(make_run("asd", sizes=((512, 512),) * 2, dataset=COCO, scored=scores(fid=None)), {0, 1})
    asd = cells(table1([run]), TABLE1, "asd")
    assert asd["FID↓"] == asd["s / image"] == asd["peak memory (GiB)"] == "OOM" and asd["images"] == "0"


def test_means_leave_oom_samples_out_and_a_note_counts_them():
    run = with_oom(make_run("sr-plus", sizes=((512, 512),) * 3, dataset=COCO, scored=scores(fid=44.0)), {1})
    text = table2([run])
    heading = "Table 2 — stage I alone: MA-COCO (manifest c0c0c0c0c0c0) at 512×512"
    row = cells(text, heading, "SD 2.1 (sr-plus)")
    assert row["images"] == "2" and row["s / image"] == "2.00" and row["peak memory (GiB)"] == "0.98"
    assert row["FID↓"] == "44.00"
    assert "- sr-plus: 1 of 3 samples OOM" in text
    assert f"memory budget per sample: 4GiB, enforced by {ENFORCED}" in text


def figure7_rows(text: str) -> dict[tuple[str, str], dict[str, str]]:
    heading = "### Figure 7"
    return {tuple(cells[:2]): dict(zip(header(text, heading), cells))
            for cells in ([c.strip() for c in line.strip("|").split("|")]
                          for line in text.split(heading)[1].splitlines()[1:] if line.startswith("| "))
            if cells[0] != "method"}


def test_figure7_shows_ceiling_trials_and_oom_samples_beside_the_papers_and_plots_them(tmp_path):
    runs = tmp_path / "runs"
    write_ceiling(runs, ceiling("asd", 4096))
    killed = ceiling("sr-plus", 1024, sides=(512, 1024, 2048))
    killed["trials"][2].update(peak_memory_mib=None, seconds=None, reason="killed by SIGKILL")
    write_ceiling(runs, killed)
    # a trial's own run (one step per stage) is read through ceiling.json, never as a Figure 7 point
    write_json(runs / "ceiling" / "tiny" / "asd-4GiB" / "trials" / "512x512" / "results.json",
               make_run("asd", sizes=((512, 512),), seconds=99.0))
    write_json(runs / "sr-plus-1024" / "results.json", make_run("sr-plus", sizes=((1024, 1024),)))
    write_json(runs / "sr-plus-2048" / "results.json",
               with_oom(make_run("sr-plus", sizes=((2048, 2048),)), {0}))
    [report] = write_report(runs, tmp_path / "reports")
    text = report.read_text()
    figure7 = figure7_rows(text)
    column = "ceiling search 4GiB (GiB)"
    assert figure7[("asd", "8192×8192")][column] == "OOM (reached 12.50)"
    assert figure7[("asd", "4096×4096")][column] == "6.25"
    assert figure7[("asd", "512×512")][column] == "0.78"
    assert figure7[("asd", "512×512")]["s / image"] == "not run"  # not the trial's 99 s
    assert figure7[("sr-plus", "2048×2048")]["peak memory (GiB)"] == "OOM"
    assert figure7[("sr-plus", "2048×2048")][column] == "OOM"  # its process was killed: nothing measured
    assert figure7[("sr-plus", "2048×2048")]["paper peak memory (GB)"] == "31.69"
    assert figure7[("sr-plus", "1024×1024")]["peak memory (GiB)"] == "3.91"
    assert figure7[("sr-plus", "4096×4096")][column] == "–"
    assert figure7[("sr-plus", "4096×4096")]["paper peak memory (GB)"] == "out of memory (32 GB)"
    assert f"- ceiling budget: 4GiB, enforced by {ENFORCED}" in text.split("### Figure 7")[1]
    assert cells(text, "Table 1 — full pipeline: MM-CelebA-HQ: not run", "asd")["max res."] == "4096² under 4GiB"
    assert (tmp_path / "reports" / "figures" / "tiny-memory.png").stat().st_size > 0
    assert "![peak memory against resolution](figures/tiny-memory.png)" in text


def test_a_profile_with_only_ceiling_searches_gets_its_report(tmp_path):
    write_ceiling(tmp_path / "runs", ceiling("asd", 2048))
    write_ceiling(tmp_path / "runs", dict(ceiling("sr-plus", None, sides=(512,)), complete=False))
    [report] = write_report(tmp_path / "runs", tmp_path / "reports")
    text = report.read_text()
    assert report.name == "tiny.md" and "2048² under 4GiB" in text
    assert cells(text, "Table 1 — full pipeline: MM-CelebA-HQ: not run", "sr-plus")["max res."] == (
        "search under 4GiB not finished")
    assert figure7_rows(text)[("asd", "2048×2048")]["peak memory (GiB)"] == "not run"
    assert (tmp_path / "reports" / "figures" / "tiny-memory.png").exists()


def test_the_all_methods_table_shows_each_methods_ceiling_and_a_search_stopped_by_time():
    from benchmark.reporting.all_methods import all_methods

    stopped = ceiling("scalecrafter", 2048, sides=(512, 1024, 2048, 4096))
    stopped["trials"][-1].update(status="timeout", peak_memory_mib=None, time_limit_s=600.0)
    stopped.update(limited_by_time=True, ceiling_is_lower_bound=True, trial_timeout_s=600.0)
    runs = [make_run("asd", dataset=COCO, scored=scores()), make_run("scalecrafter", dataset=COCO, scored=scores()),
            make_run("demofusion", dataset=COCO, scored=scores())]
    text = all_methods(runs, [ceiling("asd", 4096), stopped])
    heading = "All methods on MA-COCO (manifest c0c0c0c0c0c0)"
    assert cells(text, heading, "asd")["max res."] == "4096² under 4GiB"
    assert (cells(text, heading, "scalecrafter")["max res."]
            == "≥ 2048² under 4GiB (4096² past the 600 s time limit)")
    assert cells(text, heading, "demofusion")["max res."] == "not measured"
    assert "ceiling budget: 4GiB" in text.split(heading)[1].split("|")[0]  # how the column was made
