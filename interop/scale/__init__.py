"""Scale benchmarks: one module per axis (interop/bench_scale.py runs them)."""
