"""The To-Do app: a small Flask app instrumented with OpenTelemetry.

Usage:
    From the repository root, ``flask run`` serves it on http://127.0.0.1:5000
    (``.flaskenv`` points Flask at this package). Production servers import
    ``todo.wsgi:app``. Tests and embedding code call :func:`create_app` with a
    mapping of settings (see :mod:`todo.config`).

Layout:
    ``config``   defaults and environment variables
    ``db``       Flask-SQLAlchemy, migrations applied at startup
    ``models``   the ``Task`` model
    ``tasks``    the service layer: the only code that queries the database
    ``views``    the HTML pages; ``api`` the JSON API; ``health`` ``/healthz``
    ``errors``   error pages and JSON errors; ``security`` CSRF and headers
    ``telemetry`` OpenTelemetry set-up and instrumentation
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Flask

try:
    __version__ = version("flask-opentelemetry")
except PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
    __version__ = "0.0.0+unknown"


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create and configure the To-Do app.

    Args:
        test_config: Settings that override the defaults and the environment
            (see :mod:`todo.config`), e.g. ``{"TESTING": True,
            "SQLALCHEMY_DATABASE_URI": "sqlite:///..."}``.

    Returns:
        The app, with its database schema upgraded to the newest migration.
    """
    from todo import api, config, db, errors, health, security, telemetry, views

    app = Flask(__name__, instance_relative_config=True)
    config.configure(app, test_config)
    providers = {
        "tracer_provider": app.config["TELEMETRY_TRACER_PROVIDER"],
        "meter_provider": app.config["TELEMETRY_METER_PROVIDER"],
        "logger_provider": app.config["TELEMETRY_LOGGER_PROVIDER"],
    }
    if not any(providers.values()):
        # The SDK from the OTEL_* variables, if they ask for telemetry and
        # neither the agent nor an earlier app installed one.
        telemetry.configure_sdk()
    db.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    # After the schema upgrade (in db.init_app), which is not app activity.
    telemetry.init_app(app, **providers)
    return app
