"""Benchmarks: ``python -m bench`` (full) or ``python -m bench --quick``.

A fixed load generator (:mod:`bench.loadgen`), run in its own process, drives
each server under test (one small script per peer in :mod:`bench.servers`,
each in its own process) through the same scenarios; :mod:`bench.runner`
interleaves the peers over several rounds and reports medians and ratios.
"""
