"""The regression guard's suites and verbs: ``baseline`` writes one, ``compare`` checks against it.

A suite is a list of steps, each an API call stored as data: ``{"verb": "run", "spec":
RunSpec.as_record()}``, ``{"verb": "study", "args": {...}}`` or ``{"verb": "timing", "args":
{...}}``. The tiny suite is built from the method registry: every method in the ``tiny`` plan
(a user's method too, with the ``--include`` that registered it) on each base model in its ``models``
(on a model other than the default, small: the model's ``suite`` fields, e.g. SDXL's one item at
256×1152, over the method's), and the ``stablesr`` plan's methods on StableSR. Baselines written before suites were specifications hold command lines;
:func:`legacy_step` reads those. What is compared, and how closely, is :mod:`benchmark.regression`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Optional

from baselines.base_models import get_base_model, name_parts
from baselines.profiles import profiles
from baselines.registry import get_method, in_plan
from benchmark import api
from benchmark.errors import UsageError
from benchmark.plugins import include_of, load_plugins
from benchmark.regression import BaselineError, Check, compare, make_baseline
from benchmark.reporting.report import load_results
from benchmark.runs.records import read_json, write_json
from benchmark.runs.reference_timing import REPEATS
from benchmark.spec import RunSpec, parse_size, profile_entry

COMMITTED_BASELINES = Path("reports") / "baselines"
SUITE_RUNS = Path("runs-suite")  # apart from runs/, so that suites never enter the reports
ORACLE_STUDY = {"size": [1024, 1024], "steps": 30, "limit": 3, "progress": False}  # with the analytic profile


def _run_step(spec: RunSpec) -> dict:
    included = include_of(spec.method)
    if included and included not in spec.include:
        spec = replace(spec, include=(*spec.include, included))
    return {"verb": "run", "spec": spec.as_record()}


def suite(profile: str, methods: Optional[Iterable[str]] = None) -> list[dict]:
    """The regression suite of ``profile`` (one with ``Profile.regression``): the analytic profile's tiling study,
    or the runs of the methods in the measurement plan of the profile's name; ``methods`` keeps only those runs."""
    entry = profile_entry(profile)
    if not entry.regression:
        guarded = [name for name, known in profiles().items() if known.regression]
        raise UsageError(f"no regression suite for profile {profile!r}; known: {', '.join(guarded)}")
    if entry.analytic:
        return [{"verb": "study", "args": {"profile": profile, **ORACLE_STUDY}}]
    wanted = None if methods is None else [get_method(name).name for name in methods]
    steps = [_run_step(RunSpec(name, profile, **{"dataset": "synthetic", "limit": 2, "progress": False,
                                                  **(get_method(name).suite or {}), **model_suite(model)}))
             for name in in_plan(profile) if wanted is None or name in wanted for model in suite_models(get_method(name))
             if get_base_model(model).suite is not None]
    steps += [_run_step(RunSpec(name, profile, backbone="stablesr", dataset="synthetic", limit=1, sr_steps=4,
                                progress=False))
              for name in in_plan("stablesr") if wanted is None or name in wanted]
    return steps + ([{"verb": "timing", "args": {"profile": profile, "repeats": REPEATS}}] if wanted is None else [])


def suite_models(method) -> tuple[str, ...]:
    """The base models a method's suite steps run on: those it names for the suite, else every one it runs on."""
    return method.suite_models or method.model_names


def model_suite(model: str) -> dict:
    """RunSpec fields of a suite step on base ``model``: its ``suite`` fields, which keep each step to seconds, and
    the model where it is not the default (the default's runs keep the identities they had)."""
    return {**({"model": model} if name_parts(model) else {}), **get_base_model(model).suite}


def legacy_step(command: list[str]) -> dict:
    """A step of a baseline written before suites were specifications: ``[verb, --flag, value, ...]``,
    each ``--flag`` the field of that name (``--no-progress``: progress off)."""
    verb, values, words = command[0], {}, list(command[1:])
    while words:
        flag = words.pop(0)
        if not re.fullmatch(r"--[a-z0-9-]+", flag):
            raise BaselineError(f"cannot read the stored suite command {' '.join(command)!r} at {flag!r}")
        name = flag[2:].replace("-", "_")
        if name.startswith("no_") and (not words or words[0].startswith("--")):
            values[name[3:]] = False
            continue
        text = words.pop(0)
        values[name] = (list(parse_size(text)) if name == "size" else
                        int(text) if re.fullmatch(r"-?\d+", text) else text)
    if verb == "run":
        return {"verb": "run", "spec": RunSpec.from_record(values).as_record()}
    return {"verb": verb, "args": values}


def steps_of(baseline: dict) -> list[dict]:
    return [legacy_step(step) if isinstance(step, list) else step for step in baseline["suite"]]


def run_suite(steps: list[dict], runs: Path):
    """Run each step with its runs (and reports) under ``runs``; finished runs resume."""
    for step in steps:
        if step["verb"] == "run":
            api.run(replace(RunSpec.from_record(step["spec"]), runs=Path(runs)))
        elif step["verb"] == "study":
            args = dict(step["args"])
            api.study(**{**args, "size": tuple(args.get("size", (2048, 2048)))}, runs=runs, reports=runs / "reports")
        elif step["verb"] == "timing":
            api.timing(**step["args"], runs=runs)
        else:
            raise BaselineError(f"unknown suite step {step['verb']!r}; known: run, study, timing")


def baseline(profile: str = "oracle", runs: Path = SUITE_RUNS, out: Optional[Path] = None,
             methods: Optional[Iterable[str]] = None, include: Iterable[str] = (), why: Optional[str] = None) -> Path:
    """Run ``profile``'s suite and write its tracked figures as the new baseline (``why``: the reason, kept
    in the file); returns the file."""
    load_plugins(include)
    steps = suite(profile, methods)
    run_suite(steps, Path(runs))
    out = Path(out) if out is not None else COMMITTED_BASELINES / f"{profile}.json"
    write_json(out, {**make_baseline(suite_results(steps, runs), profile, steps, Path(runs)), "why": why})
    return out


def suite_results(steps: list[dict], runs: Path) -> list[dict]:
    """The results under ``runs`` of the suite's methods: a baseline tracks the suite, not whatever else the
    folder holds (a plugin's example run, an earlier experiment)."""
    wanted = {step["spec"]["method"] for step in steps if step["verb"] == "run"}
    return [result for result in load_results(runs) if result["method"] in wanted]


def check(baseline_file: Path, runs: Path = SUITE_RUNS, run: bool = True, include: Iterable[str] = ()) -> list[Check]:
    """Run (or resume) the baseline's suite unless ``run`` is False, and check every tracked figure
    (plugins: the ``include`` of each stored run, and ``include``)."""
    load_plugins(include)
    baseline_file = Path(baseline_file)
    if not baseline_file.exists():
        raise UsageError(f"no baseline at {baseline_file}; write one with "
                         "`python -m benchmark baseline --profile <profile>`")
    stored = read_json(baseline_file)
    steps = steps_of(stored)
    for step in steps:
        load_plugins(step.get("spec", {}).get("include", ()))
    if run:
        run_suite(steps, Path(runs))
    return compare(stored, load_results(runs), Path(runs))
