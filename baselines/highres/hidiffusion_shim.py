"""Importing the ``hidiffusion`` package on today's diffusers: the one compatibility shim.

hidiffusion 0.1.10 imports ``diffusers.pipelines.controlnet.multicontrolnet``, which
diffusers moved to ``diffusers.models.controlnets.multicontrolnet``; where the old path is
gone, it is aliased to the new one before the import. Nothing else of the package is changed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from functools import lru_cache

MOVED = {"diffusers.pipelines.controlnet.multicontrolnet": "diffusers.models.controlnets.multicontrolnet"}
PACKAGE = "hidiffusion"


def import_hidiffusion():
    """The ``hidiffusion`` module, importable on the installed diffusers."""
    for old, new in MOVED.items():
        try:
            importlib.import_module(old)
        except ModuleNotFoundError:
            sys.modules[old] = importlib.import_module(new)
    try:
        return importlib.import_module(PACKAGE)
    except ModuleNotFoundError as error:
        if error.name != PACKAGE:
            raise
        raise ModuleNotFoundError(f"the hidiffusion method needs the {PACKAGE!r} package: "
                                  f"python -m pip install {PACKAGE}") from error


@lru_cache(maxsize=1)
def version() -> str:
    return importlib.metadata.version(PACKAGE)
