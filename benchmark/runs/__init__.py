"""Running a method: the resumable per-sample loop, what one sample of a model run is,
how its time and memory are measured, and the records every result is written to.

May import :mod:`benchmark.metrics` (data-set hashes) and :mod:`baselines`; never
:mod:`benchmark.reporting`, so a run does not depend on how it is shown.
"""
