"""Performance benchmarks (not part of the test suite). Run e.g. `python -m benchmarks.bench_stats`.

Reports go to benchmarks/out/ and synthetic checkpoints to benchmarks/.cache/ (both gitignored).
"""
