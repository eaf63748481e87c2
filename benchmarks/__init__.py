"""Benchmarks: `python -m benchmarks` runs every bench_*.py here, one after the other."""
