"""Benchmarks: the bench_*.py scripts, and the load, soak and chaos harness in load/."""
