"""Reproducible builders of the ASD benchmark's data sets from their raw releases.

Sets: ``ma-coco``, ``ma-laion-coco``, ``mm-celeba-hq``, ``arad-train`` and the offline
``synthetic`` (see docs/datasets.md). Build with ``python -m datasets_build NAME ...``
or :func:`build`; the benchmark finds a build with :func:`resolve` and reads it with
:func:`iter_items`.
"""

from .builder import build
from .errors import DatasetError, LayoutError, NotBuiltError, StaleBuildError
from .loader import Item, is_built, iter_items, resolve
from .sets import SETS
from .sizes import ARAD_BUCKETS, MA_SIZES, Size

__all__ = [
    "ARAD_BUCKETS",
    "MA_SIZES",
    "SETS",
    "DatasetError",
    "Item",
    "LayoutError",
    "NotBuiltError",
    "Size",
    "StaleBuildError",
    "build",
    "is_built",
    "iter_items",
    "resolve",
]
