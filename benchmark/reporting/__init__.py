"""Finished runs as the paper's tables and figures: the report, its tables, the provenance
lines that head them, plots, the paper's own figures, the runs behind each table, ceiling
searches and out-of-memory samples.

Reads what :mod:`benchmark.runs` wrote; nothing under ``benchmark`` outside the CLI imports it.
"""
