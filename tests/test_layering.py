"""The layering of the tree: which part may import which, read from the source, transitively.

* ``datasets_build`` imports neither ``baselines`` nor ``benchmark`` (a data set is built
  without any model or metric);
* ``baselines`` does not import ``benchmark`` (the methods run without the suite);
* the tiling engine and the sampling loop import nothing from diffusers, not even through
  another module of the project (the engine is plain tensor code);
* ``benchmark.runs`` does not import ``benchmark.reporting`` (a run does not depend on how
  it is shown).

Every import counts, also those inside functions, since they run as soon as the function does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("datasets_build", "baselines", "benchmark")

#: (modules the rule applies to, what they must not reach, why).
RULES = (
    ("datasets_build", "baselines", "data sets are built without the methods"),
    ("datasets_build", "benchmark", "data sets are built without the suite"),
    ("baselines", "benchmark", "the methods run without the suite"),
    ("baselines.tiling", "diffusers", "the tiling engine is plain tensor code"),
    ("baselines.tiled_sampling", "diffusers", "the sampling loop takes any scheduler object"),
    ("benchmark.runs", "benchmark.reporting", "a run does not depend on how it is shown"),
    ("benchmark.runs", "benchmark.api", "the runner sits below the API"),
    ("benchmark.metrics", "benchmark.reporting", "the metric registry sits below the reports"),
    ("benchmark.metrics", "benchmark.cli", "the metric registry sits below the command line"),
    ("benchmark.reporting", "benchmark.api", "reports read results, they run nothing"),
    ("benchmark.reporting", "benchmark.cli", "reports sit below the command line"),
    ("benchmark.api", "benchmark.cli", "the API sits below the command line, which only parses into it"),
    ("benchmark.guard", "benchmark.cli", "the guard calls the API, not the command line"),
    ("benchmark.spec", "benchmark.cli", "the run specification sits below the command line"),
    ("benchmark.plugins", "benchmark.cli", "plugins load below the command line"),
    ("benchmark.gpu_measure", "benchmark.cli", "the GPU plan calls the API, not the command line"),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from a import b`` counts as ``a`` and ``a.b``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module name -> modules it imports, for every module of the project's packages under ``root``."""
    graph = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = module_name(path, root)
            graph[name] = imports_of(path, name)
    return graph


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def reached(graph: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every module ``start`` imports directly or through project modules, with one chain to it."""
    chains = {start: [start]}
    todo = [start]
    while todo:
        current = todo.pop()
        for target in sorted(graph.get(current, ())):
            # importing a.b.c runs a and a.b too
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                step = ".".join(parts[:k])
                if step not in chains:
                    chains[step] = chains[current] + [step]
                    if step in graph:
                        todo.append(step)
    return chains


def violations(root: Path) -> list[str]:
    graph = import_graph(root)
    found = []
    for scope, forbidden, why in RULES:
        for name in sorted(n for n in graph if within(n, scope)):
            for target, chain in reached(graph, name).items():
                if within(target, forbidden):
                    found.append(f"{name} reaches {target} ({' -> '.join(chain)}): {why}")
                    break
    return found


def test_the_tree_keeps_its_layers():
    assert violations(REPO) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize("files, expected", [
    ({"datasets_build/sizes.py": "def f():\n    from benchmark.cli import main\n"},
     "datasets_build.sizes reaches benchmark"),
    ({"baselines/methods.py": "from benchmark.metrics import fid\n"}, "baselines.methods reaches benchmark"),
    ({"baselines/tiling.py": "from .helpers import x\n", "baselines/helpers.py": "import diffusers.schedulers\n"},
     "baselines.tiling reaches diffusers (baselines.tiling -> baselines.helpers -> diffusers)"),
    ({"benchmark/runs/__init__.py": "", "benchmark/runs/runner.py": "from ..reporting import plots\n",
      "benchmark/reporting/__init__.py": "", "benchmark/reporting/plots.py": ""},
     "benchmark.runs.runner reaches benchmark.reporting"),
    ({"benchmark/api.py": "def run():\n    from benchmark.cli import main\n", "benchmark/cli/__init__.py": ""},
     "benchmark.api reaches benchmark.cli"),
    ({"benchmark/metrics/__init__.py": "", "benchmark/metrics/registry.py": "from benchmark.reporting import report\n",
      "benchmark/reporting/__init__.py": "", "benchmark/reporting/report.py": ""},
     "benchmark.metrics.registry reaches benchmark.reporting"),
])
def test_each_rule_catches_an_import_that_breaks_it(tmp_path, files, expected):
    found = violations(_tree(tmp_path, files))
    assert any(v.startswith(expected) for v in found), found


def test_allowed_imports_are_not_flagged(tmp_path):
    files = {"baselines/tiling.py": "import torch\n", "baselines/methods.py": "import diffusers\nfrom .tiling import x\n",
             "benchmark/reporting/__init__.py": "", "benchmark/reporting/report.py": "from benchmark.runs import records\n",
             "benchmark/runs/__init__.py": "", "benchmark/runs/records.py": "from datasets_build import sizes\n"}
    assert violations(_tree(tmp_path, files)) == []
