"""An asd-bench plugin: the method ``sd21-bicubic`` and the metric ``sharpness``.

Installed (``pip install -e examples/plugin``), its entry points register both in every
asd-bench process; without installing, ``--include asd_bench_example`` with the folder on
``PYTHONPATH`` does the same.
"""

from asd_bench_example import method, metric  # noqa: F401  (importing registers them)
