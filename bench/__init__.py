"""Benchmarks: what telemetry costs the To-Do app, and how fast otelviewer is.

Run them with ``make bench`` (``make bench QUICK=1`` for the reduced version);
docs/benchmarks.md explains the method and records the figures.
"""
