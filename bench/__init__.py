"""Benchmarks: `make bench` runs them all and prints numbers against their targets."""
