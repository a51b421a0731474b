"""Methods and metrics from outside the package: ``--include MODULE_OR_FILE`` and entry points.

A plugin is a module that registers methods (:func:`baselines.registry.register_method`)
and metrics (:func:`benchmark.metrics.registry.register_metric`) when imported. It is found
by ``--include`` (a module name on the path, or a ``.py`` file) or by an installed
distribution's entry points in the groups ``asd_bench.methods`` and ``asd_bench.metrics``
(each entry names a module, or an object in one, whose import registers). Entry points are
loaded once per process at the first API call; a plugin that does not import is an error
that names it and its import error (docs/extending.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterable, Optional

from baselines.origins import RegistrationError, name_file_module
from baselines.registry import methods
from benchmark.errors import PluginError

GROUPS = ("asd_bench.methods", "asd_bench.metrics")
_loaded: set[str] = set()
_included_by: dict[str, str] = {}  # method name -> the --include that registered it


def include_of(method: str) -> Optional[str]:
    """The ``--include`` whose import registered ``method`` (None: built-in, an entry point or a notebook),
    so that a suite of runs can name it again."""
    return _included_by.get(method)


def _import(name: str, where: str):
    try:
        if name.endswith(".py") or Path(name).is_file():
            path = Path(name).resolve()
            if not path.is_file():
                raise FileNotFoundError(f"no file {path}")
            module_name = f"asd_bench_include_{path.stem}"
            name_file_module(module_name, str(path))  # origins and messages show the file, not this name
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
            return module
        return importlib.import_module(name)
    except PluginError:
        raise
    except RegistrationError as error:
        raise PluginError(f"{where} {name!r} imports, but what it registers is refused: {error}") from error
    except Exception as error:
        raise PluginError(f"{where} {name!r} does not import: {type(error).__name__}: {error}") from error


def include(names: Iterable[str]) -> list[str]:
    """Import each module or file of ``names`` once (its import registers its methods and metrics)."""
    done = []
    for name in names:
        if name not in _loaded:
            before = set(methods())
            _import(name, "--include")
            _loaded.add(name)
            _included_by.update(dict.fromkeys(set(methods()) - before, name))
        done.append(name)
    return done


def load_entry_points() -> list[str]:
    """Load every entry point of :data:`GROUPS` not loaded yet; returns the names loaded now."""
    loaded = []
    for group in GROUPS:
        for point in entry_points(group=group):
            key = f"{group}:{point.name}={point.value}"
            if key in _loaded:
                continue
            try:
                point.load()
            except PluginError:
                raise
            except RegistrationError as error:
                raise PluginError(f"entry point {point.name!r} ({point.value}) of group {group} imports, but what "
                                  f"it registers is refused: {error}") from error
            except Exception as error:
                raise PluginError(f"entry point {point.name!r} ({point.value}) of group {group} does not import: "
                                  f"{type(error).__name__}: {error}") from error
            _loaded.add(key)
            loaded.append(key)
    return loaded


def load_plugins(names: Iterable[str] = ()) -> None:
    """Entry points, then the modules of ``--include``: what every API call does first."""
    load_entry_points()
    include(names)
