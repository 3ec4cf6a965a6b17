"""Print the Prometheus exposition of the metrics the real app emits after some traffic.

Run as ``python -m tests.deploy.emit_metrics`` (tests/deploy/test_configs.py
does, in a fresh process, so that ``OTEL_SEMCONV_STABILITY_OPT_IN`` from the
environment takes effect: the instrumentations read it once per process).

The app is created with the OpenTelemetry Prometheus exporter's reader
(``PrometheusMetricReader``) on a private registry, which translates metric
names and labels exactly as the Collector's ``prometheus`` exporter and a
direct scrape (``OTEL_METRICS_EXPORTER=prometheus``) do:
``todo.tasks.created`` becomes ``todo_tasks_created_total``,
``http.server.request.duration`` (s) ``http_server_request_duration_seconds_*``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest

from todo import create_app

#: Unknown task id: the API answers 404 for it, so error series exist too.
MISSING_TASK_ID = 999_999


def exposition() -> str:
    """Create the app, send it a little of every kind of request, return /metrics text."""
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(tmp) / 'todo.sqlite'}",
                "TELEMETRY_METER_PROVIDER": provider,
            }
        )
        client = app.test_client()
        created = client.post("/api/tasks", json={"description": "Buy milk"})
        assert created.status_code == 201, created.data
        task_id = created.get_json()["id"]
        assert client.get("/").status_code == 200
        assert client.get("/api/tasks").status_code == 200
        assert client.patch(f"/api/tasks/{task_id}", json={"done": True}).status_code == 200
        assert client.get(f"/api/tasks/{MISSING_TASK_ID}").status_code == 404
        assert client.post("/api/tasks", json={"description": " "}).status_code == 400
        text = generate_latest(registry).decode()
        provider.shutdown()
        with app.app_context():
            from todo.db import db

            db.engine.dispose()
    return text


if __name__ == "__main__":
    sys.stdout.write(exposition())
