"""Kap benchmarks: `python -m bench` prints figures."""
