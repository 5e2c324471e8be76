"""Benchmarks that print ratios against baselines measured in the same run.

`make bench` (or `python -m bench`) measures the purchase endpoint against a naive
Postgres row-lock implementation and a no-op endpoint of the same app, then the order
writer's drain rate. See `python -m bench --help`.
"""
