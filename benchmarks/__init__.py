"""Offline benchmarks for newsreader: `make bench` runs them and writes BENCHMARKS.md."""
