"""Benchmarks drawn fresh at run time (templated problems instantiated from a seed)."""
