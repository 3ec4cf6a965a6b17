"""``GET /healthz``: a liveness check for load balancers and orchestrators.

It answers ``200 {"status": "ok"}`` as long as the process serves requests,
without touching the database, and is excluded from tracing (see
:mod:`todo.telemetry`), so frequent probes add no noise.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """Answer that the app is alive."""
    return {"status": "ok"}
