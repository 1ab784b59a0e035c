"""Benchmarks (`make bench`): a real gateway process on loopback, measured from outside."""
