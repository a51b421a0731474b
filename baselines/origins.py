"""What every registry (methods, metrics, base models) shares: its refusal and who registered an entry.

Apart from :mod:`baselines.registry` so that the base-model registry, which that module imports,
can raise the same error and name origins the same way without a circular import.
"""

from __future__ import annotations

BUILT_IN = "built-in"  # the origin of the entries the package registers itself
_FILE_MODULES: dict[str, str] = {}  # module name -> the .py file it was loaded from (``--include FILE``)


class RegistrationError(ValueError):
    """An entry (method, metric, base model) that cannot be registered: a bad entry, or a name another holds."""


def name_file_module(module: str, path: str):
    """Show the module loaded from ``path`` by that path wherever an origin is shown."""
    _FILE_MODULES[module] = path


def origin_of(module: str) -> str:
    """Who registered an entry, as a user would recognise it: the module's name, or its file's path."""
    return _FILE_MODULES.get(module, module)
