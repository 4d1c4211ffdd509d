"""Benchmark scripts (not tests): bench_cpu.py, bench_gpu.py, bench_memory.py; see each module docstring."""
