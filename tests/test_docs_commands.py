"""Every fenced command of README.md and docs/*.md parses, and the cheap ones run (issue 24).

The docs are what a reader copies from: an option renamed or dropped in the command line but
not in the docs shows only when someone pastes the line. So each ``python -m benchmark``,
``asd-bench``, ``python -m datasets_build`` and ``python -m baselines.train_arad`` line of a
shell code block (also after ``NAME=value`` prefixes, after ``&&`` and under
``accelerate launch ... -m``) is parsed here by the real parser, and a failure names the doc's
file and line. ``--help`` must exit 0 for every verb; ``list``, ``weights --profile paper`` (in
an empty home and cache) and the synthetic data set's build run for real. No model runs.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

import baselines.train_arad
import datasets_build.cli
from baselines.models import CACHE_VARIABLE
from baselines.paper_weights import PATH_VARIABLES, REPO_VARIABLES
from benchmark.cli import VERBS, build_parser, main

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: The parser of each program the docs run, by its module name.
PARSERS = {"benchmark": build_parser, "datasets_build": datasets_build.cli.parser,
           "baselines.train_arad": baselines.train_arad.parser}
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
OPERATORS = {"&&", "||", ";", "|", "&"}
ELISION = "..."  # "the options above", as in `accelerate launch ... -m benchmark run ... --device cuda`
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
PYTHON = re.compile(r"python(3(\.\d+)?)?")
FENCE = re.compile(r"(`{3,}|~{3,})\s*([\w+-]*)")
HELP = ("--help", "-h")
USER_HOME = Path.home()  # before any test points HOME elsewhere


@dataclass(frozen=True)
class DocCommand:
    """One command of ours in a doc's code block: where it is, the program, its arguments."""

    path: str
    line: int
    program: str
    argv: tuple[str, ...]
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


def fenced_blocks(text: str):
    """(number of its first line, its lines) of every shell code block of a markdown text."""
    fence, language, start, body = None, "", 0, []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            match = FENCE.match(stripped)
            if match:
                fence, language, start, body = match.group(1), match.group(2).lower(), number + 1, []
        elif stripped.startswith(fence) and not stripped.strip(fence[0]):
            if language in SHELL_FENCES:
                yield start, body
            fence = None
        else:
            body.append(line)


def logical_lines(start: int, body: list[str]):
    """(number of its first line, text) of each command line, backslash-continued lines joined."""
    pending, first = [], start
    for number, line in enumerate(body, start):
        if not pending:
            first = number
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        yield first, " ".join(pending + [line]).strip()
        pending = []
    if pending:
        yield first, " ".join(pending).strip()


def tokens(line: str) -> list[str]:
    """The shell words of a line, without its `# comment`; operators (&&, |, ;) are words of their own.
    (Unlike bash, shlex also starts a comment at a '#' inside an unquoted word: quote such words.)"""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    return list(lexer)


def simple_commands(words: list[str]):
    """The words of each simple command of a list joined by &&, ||, ;, |."""
    command = []
    for word in words + [";"]:
        if word in OPERATORS:
            if command:
                yield command
            command = []
        else:
            command.append(word)


def program_and_argv(words: list[str]):
    """(module, arguments) of `[NAME=value ...] python -m MODULE ...`, `accelerate launch ... -m MODULE ...`
    or `asd-bench ...` when MODULE is one of ours; None for any other command."""
    while words and ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return None
    if words[0] == "asd-bench":
        module, rest = "benchmark", words[1:]
    elif (PYTHON.fullmatch(words[0]) or words[:2] == ["accelerate", "launch"]) and "-m" in words[:-1]:
        at = words.index("-m")
        module, rest = words[at + 1], words[at + 2:]
    else:
        return None
    return (module, tuple(word for word in rest if word != ELISION)) if module in PARSERS else None


def extract(text: str, path: str) -> list[DocCommand]:
    """Every command of ours in the shell code blocks of a markdown text."""
    found = []
    for start, body in fenced_blocks(text):
        for line, logical in logical_lines(start, body):
            for words in simple_commands(tokens(logical)):
                parsed = program_and_argv(words)
                if parsed:
                    found.append(DocCommand(path, line, parsed[0], parsed[1], logical))
    return found


def check(command: DocCommand) -> None:
    """Parse the command with its program's real parser; `--help` must exit 0 having printed the help.
    An AssertionError names the doc's file, line and the command."""
    out, err = io.StringIO(), io.StringIO()
    code = None
    with redirect_stdout(out), redirect_stderr(err):
        try:
            PARSERS[command.program]().parse_args(list(command.argv))
        except SystemExit as exit:
            code = exit.code
        except Exception as error:  # a help text argparse cannot format, a converter that crashes
            raise AssertionError(f"{command.where}\n  crashed: {error!r}") from error
    if any(word in HELP for word in command.argv):
        assert code == 0 and out.getvalue(), f"{command.where}\n  --help exited {code}: {err.getvalue().strip()}"
    else:
        assert code is None, f"{command.where}\n  does not parse (exit {code}): {err.getvalue().strip()}"


def ids(commands: list[DocCommand]) -> list[str]:
    """file:line, and file:line/2, /3 ... for further commands of the same line."""
    seen: dict[str, int] = {}
    named = []
    for command in commands:
        key = f"{command.path}:{command.line}"
        seen[key] = seen.get(key, 0) + 1
        named.append(key if seen[key] == 1 else f"{key}/{seen[key]}")
    return named


COMMANDS = [c for doc in DOCS for c in extract(doc.read_text(encoding="utf-8"), doc.relative_to(REPO).as_posix())]


@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
def test_every_documented_command_parses(command):
    check(command)


def test_commands_are_found_in_the_readme_and_the_guides():
    files = {command.path for command in COMMANDS}
    assert {"README.md", "docs/usage.md", "docs/datasets.md", "docs/scaling-out.md"} <= files
    assert sum(command.path == "README.md" for command in COMMANDS) >= 10
    assert {command.program for command in COMMANDS} == set(PARSERS)


def test_no_fenced_line_naming_one_of_our_programs_is_left_unchecked():
    ours = re.compile(r"asd-bench|-m (benchmark|datasets_build|baselines\.train_arad)")
    checked = {(c.path, c.line) for c in COMMANDS}
    for doc in DOCS:
        path = doc.relative_to(REPO).as_posix()
        for start, body in fenced_blocks(doc.read_text(encoding="utf-8")):
            for line, logical in logical_lines(start, body):
                for words in simple_commands(tokens(logical)):
                    program = [w for w in words if not ASSIGNMENT.match(w)][:1]
                    if program and re.fullmatch(r"python.*|accelerate|asd-bench", program[0]) \
                            and ours.search(" ".join(words)):
                        assert (path, line) in checked, f"{path}:{line}: not recognised as a command: {logical}"


# --- the extractor and the check themselves ---------------------------------------------------

SAMPLE = """\
Inline `python -m benchmark run --bogus` is prose, not a command.

```bash
# a comment line
PYTHONPATH=x python -m benchmark run --method asd \\
    --limit 2          # the tiny profile
python -m pip install -e . && asd-bench report --runs runs
accelerate launch --multi_gpu --num_processes 2 -m benchmark score RUN_DIR ... --device cpu
python -m benchmark run --no-such-option 3
python -m datasets_build synthetic --out data/synthetic
python -m benchmark --help
```

```python
python -m benchmark run --also-not-a-command
```
"""


def test_the_extractor_finds_joins_and_strips_as_a_shell_would():
    found = extract(SAMPLE, "SAMPLE.md")
    assert [(c.line, c.program, c.argv) for c in found] == [
        (5, "benchmark", ("run", "--method", "asd", "--limit", "2")),
        (7, "benchmark", ("report", "--runs", "runs")),
        (8, "benchmark", ("score", "RUN_DIR", "--device", "cpu")),
        (9, "benchmark", ("run", "--no-such-option", "3")),
        (10, "datasets_build", ("synthetic", "--out", "data/synthetic")),
        (11, "benchmark", ("--help",)),
    ]
    assert ids(found + found[:1])[-1] == "SAMPLE.md:5/2"


def test_a_command_that_does_not_parse_fails_naming_its_line(capsys):
    good, bad = [], []
    for command in extract(SAMPLE, "SAMPLE.md"):
        try:
            check(command)
            good.append(command.line)
        except AssertionError as error:
            bad.append(str(error))
    assert good == [5, 7, 8, 10, 11]
    (message,) = bad
    assert "SAMPLE.md:9: python -m benchmark run --no-such-option 3" in message and "--no-such-option" in message
    assert capsys.readouterr().out == ""  # the help text went into the check, not the terminal


# --- the cheap ones, run for real --------------------------------------------------------------


def documented(program: str, *argv: str) -> DocCommand:
    """The documented command with exactly these arguments (so what runs here is what the docs say)."""
    found = [c for c in COMMANDS if c.program == program and c.argv == argv]
    assert found, f"`{program} {' '.join(argv)}` is no longer in the docs: update this test"
    return found[0]


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """A home and caches with nothing in them, and none of the variables that point at weights."""
    import huggingface_hub.constants

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    named = {*PATH_VARIABLES.values(), *REPO_VARIABLES.values(), "TORCH_HOME", "XDG_CACHE_HOME"}
    for variable in list(os.environ):
        if variable in named or variable.startswith(("ASD_", "HF_", "HUGGINGFACE_")):
            monkeypatch.delenv(variable)
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "asd-bench-cache"))
    # huggingface_hub reads its cache folder once, at import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(home / ".cache" / "huggingface" / "hub"))
    return home


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0 and out.startswith("usage: python -m benchmark")
    assert all(verb.NAME in out for verb in VERBS)


@pytest.mark.parametrize("verb", [verb.NAME for verb in VERBS])
def test_every_verb_help_exits_0(verb, capsys):
    with pytest.raises(SystemExit) as exit:
        main([verb, "--help"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith(f"usage: python -m benchmark {verb}")


def test_help_through_the_console_script_and_a_pipe_that_closes_early():
    """What the README tells a newcomer to type: ``asd-bench VERB --help`` (the installed script) and
    ``python -m benchmark run --help | head``: both at once, in one process (an import costs seconds)."""
    script = shutil.which("asd-bench")
    if script is None:
        pytest.skip("the asd-bench console script is not installed (pip install -e .)")
    piped = subprocess.run(f"set -o pipefail; {shlex.quote(script)} run --help | head -3", shell=True,
                           executable="/bin/bash", capture_output=True, text=True, timeout=120, cwd=REPO)
    assert piped.returncode == 0 and piped.stdout.startswith("usage: asd-bench run"), piped.stderr
    assert len(piped.stdout.splitlines()) == 3 and "Traceback" not in piped.stderr, piped.stderr


@pytest.mark.parametrize("program", ["datasets_build", "baselines.train_arad"])
def test_the_other_programs_help_exits_0(program, capsys):
    with pytest.raises(SystemExit) as exit:
        PARSERS[program]().parse_args(["--help"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith(f"usage: python -m {program}")


def test_list_runs(capsys):
    assert main(list(documented("benchmark", "list").argv)) == 0
    out = capsys.readouterr().out
    for heading in ("commands:", "methods:", "metrics:", "profiles:"):
        assert heading in out
    for name in ("asd", "fstd", "sr-tile", "oracle", "tiny", "paper"):
        assert f"\n  {name} " in out
    from benchmark.metrics.registry import metrics

    listed = out.split("metrics:\n")[1].split("protocol presets")[0]
    for metric in (m for m in metrics() if m.origin == "built-in"):  # each with its definition's source, next line
        assert metric.source and f"  {metric.name} " in listed, metric.name
        assert listed.split(f"  {metric.name} ")[1].splitlines()[1].strip() == f"source: {metric.source}"


def test_weights_of_the_paper_profile_in_an_empty_home_says_what_is_missing_where(empty_home, capsys):
    code = main(list(documented("benchmark", "weights", "--profile", "paper").argv))
    out = capsys.readouterr().out
    assert code == 1  # no SD 2.1, x4 upscaler or LoRA: the paper's methods cannot run
    assert "cannot run: missing SD 2.1 weights" in out and "$ASD_ARAD_LORA" in out
    assert str(empty_home / ".cache" / "huggingface" / "hub") in out
    assert str(USER_HOME / ".cache") not in out  # the user's own caches were not looked at


def test_the_synthetic_data_set_builds(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert datasets_build.cli.main(list(documented("datasets_build", "synthetic", "--out", "data/synthetic").argv)) == 0
    out = tmp_path / "data" / "synthetic"
    assert (out / "build_info.json").is_file() and (out / "manifest.parquet").is_file()
    assert Path(capsys.readouterr().out.strip()).resolve() == out.resolve()
