"""Benchmarks: ``make bench`` (``python -m bench [name ...]``). Not tests; they print figures."""
