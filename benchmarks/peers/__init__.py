"""Helpers for benchmarks/compare.py: peer environments, models, servers and load generators."""
