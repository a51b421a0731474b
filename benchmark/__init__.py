"""Benchmark runner for any-size text-to-image synthesis: runs, measures, scores, reports."""
