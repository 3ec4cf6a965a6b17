"""Where the blueprints find the app's ``QueryService``."""

from __future__ import annotations

from flask import current_app

from otelviewer.query import QueryService

#: The key of the ``QueryService`` in ``app.extensions``.
EXTENSION_KEY = "otelviewer.query"


def query_service() -> QueryService:
    """Return the ``QueryService`` of the current app."""
    service: QueryService = current_app.extensions[EXTENSION_KEY]
    return service
