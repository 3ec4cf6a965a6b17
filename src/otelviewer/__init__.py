"""otelviewer: an embedded, single-process OTLP backend for local development.

It plays "OpenTelemetry Collector + Jaeger all-in-one" on one machine: OTLP on
4317 (gRPC) and 4318 (HTTP), SQLite storage, a Jaeger-compatible query API and a
web UI on 16686. It is for a laptop; production uses the real Collector, Jaeger
and Prometheus (see ``deploy/``).

Layers, dependencies pointing one way::

    receiver (grpc, http)  ->  store.Writer
    ui, api (Jaeger JSON)  ->  query  ->  store.Reader

Usage::

    otelviewer serve            # or: python -m otelviewer serve
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
