"""Profiles are registered entries whose attributes the suite reads: it does not branch on their names.

An unknown profile names the known ones, ``list`` shows each with its description, a profile added at
runtime is resolved from its attributes alone, and ``benchmark/`` holds at most five lines that test a
profile's or a base model's name (read from the source, so a new branch on a name fails here).
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import replace
from pathlib import Path

import pytest

import baselines.profiles
from baselines.profiles import default_profile, get_profile, profiles
from benchmark.cli import main
from benchmark.errors import UsageError
from benchmark.spec import RunSpec

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmark"
NAMES = "tiny|paper|oracle|paper-arch|sd21|sdxl"
#: A test of a profile's or model's name: a comparison with a name (``== "tiny"``, ``"paper" !=``,
#: ``== DEFAULT_MODEL``), membership in a list of names (``in ("paper", ...)``), or ``profile``/``model``
#: against a constant (``ORACLE_PROFILE``).
NAME_TEST = re.compile(rf"""(==|!=) ?(["']({NAMES})["']|DEFAULT_MODEL\b)|["']({NAMES})["'] ?(==|!=)"""
                       rf"""|DEFAULT_MODEL ?(==|!=)|\bin [(\[]?["']({NAMES})["']"""
                       rf"""|\b(profile|model) ?(==|!=|in|not in) [A-Z_]{{3,}}\b""")
#: `for profile in ...`: a loop, not a test (but `[r for r in rs if model_of(r) == DEFAULT_MODEL]` tests a name)
ITERATION = re.compile(r"\bfor\s+(?:(?!\bif\b)[\w\s,()])*$")
MOST = 5


def name_tests(root: Path) -> list[str]:
    """Every line under ``root`` that tests a profile's or model's name, as ``path:line: text``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if any(not ITERATION.search(code[:match.start()]) for match in NAME_TEST.finditer(code)):
                found.append(f"{path.relative_to(root.parent)}:{number}: {line.strip()}")
    return found


def test_benchmark_branches_on_a_profile_or_model_name_in_at_most_five_lines():
    found = name_tests(BENCHMARK)
    assert len(found) <= MOST, ("read the Profile / BaseModel entry's attributes instead of testing a name:\n"
                                + "\n".join(found))


def test_the_name_scan_finds_what_it_is_meant_to(tmp_path):
    package = tmp_path / "benchmark"
    package.mkdir()
    (package / "m.py").write_text('if spec.profile == "tiny":\nok = model != DEFAULT_MODEL\n'
                                  'x = p in ("paper", "tiny")\nif profile not in RANDOM_PROFILES:\n'
                                  'for profile in MODEL_PROFILES:\nsame = r.get("profile") == profile\n'
                                  '# profile == "tiny" in a comment\n')
    assert [line.split(": ", 1)[0] for line in name_tests(package)] == [f"benchmark/m.py:{n}" for n in (1, 2, 3, 4)]


def test_an_unknown_profile_names_the_known_ones():
    with pytest.raises(UsageError, match=r"unknown profile 'huge'; known profiles: oracle, tiny, paper-arch, paper$"):
        RunSpec("asd", profile="huge").resolved()
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        assert main(["timing", "--profile", "oracle"]) == 2
    assert "unknown profile 'oracle'; known model profiles: tiny, paper-arch, paper" in errors.getvalue()


def test_list_shows_every_profile_with_its_description_and_the_defaults():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list"]) == 0
    text = out.getvalue().split("profiles:\n")[1]
    for name, profile in profiles().items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(profile.description)}", text, re.M), name
    assert re.search(r"^  tiny .*\[default for every other method\]$", text, re.M)
    assert re.search(r"^  oracle .*\[default for the oracle method\]$", text, re.M)


def test_a_run_reads_its_profile_entry_not_its_name(monkeypatch):
    """A profile added at runtime, tiny's weights at other steps, resolves from its attributes alone."""
    mine = replace(get_profile("tiny"), name="tiny-fast", steps=(2, 3), default=False, regression=False)
    monkeypatch.setitem(baselines.profiles._PROFILES, mine.name, mine)
    spec = RunSpec("asd", profile="tiny-fast").resolved()
    assert (spec.steps, spec.sr_steps, spec.entry) == (2, 3, mine)
    assert default_profile(False).name == "tiny" and default_profile(True).name == "oracle"
    oracle = RunSpec("fstd").resolved()
    assert oracle.profile == "oracle" and not oracle.score and oracle.size == (2048, 2048)
    with pytest.raises(UsageError, match=r"the oracle profile has no models .* one of tiny, paper-arch, paper, "
                                         r"tiny-fast"):
        RunSpec("asd", profile="oracle").resolved()
