"""Benchmarks: ``make bench`` runs :mod:`benchmarks.bench_processing`."""
