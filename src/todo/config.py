"""Configuration of the To-Do app: defaults in code, overrides from the environment.

Configuration:
    ``DATABASE_URL``
        SQLAlchemy URL of the database (``SQLALCHEMY_DATABASE_URI``). Default: a
        SQLite file ``todo.sqlite`` in the app's instance folder. PostgreSQL:
        ``postgresql+psycopg://user:password@host:5432/todo``.
    ``SECRET_KEY``
        Signs the session cookie and the CSRF tokens of the forms. Set it to a
        long random value in production, the same for every process of the app
        (``python -c "import secrets; print(secrets.token_hex(32))"``). Without
        it, a development or test app (``FLASK_DEBUG=1``, ``TESTING``) uses a
        fixed, publicly known development key; any other app generates a random
        key for its process and logs a warning: forms then stop working after a
        restart and across the workers of a multi-process server.

    Tests pass a mapping to ``create_app(test_config)``, which overrides all of
    the above (keys listed in :func:`defaults`).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

logger = logging.getLogger(__name__)

#: Environment variable with the database URL.
DATABASE_URL_ENV = "DATABASE_URL"
#: Environment variable with the secret key.
SECRET_KEY_ENV = "SECRET_KEY"  # noqa: S105 - the variable's name, not a secret

#: File name of the default SQLite database, inside the instance folder.
SQLITE_FILENAME = "todo.sqlite"

#: Largest request body accepted, in bytes; larger ones get 413. A task is at
#: most 256 characters (at most 1 KiB of UTF-8) plus a CSRF token or a little
#: JSON around it: 16 KiB leaves ample room and refuses junk before it is read.
MAX_CONTENT_LENGTH = 16 * 1024

#: The key of development and test apps only (debug on or TESTING): it is in
#: the source code, so it protects nothing, but it survives the debug reloader.
DEV_SECRET_KEY = "dev-only-insecure-key"  # noqa: S105 - deliberately public, dev only

#: Length in bytes of the key generated when none is set outside development.
GENERATED_SECRET_KEY_BYTES = 32


def defaults(app: Flask) -> dict[str, Any]:
    """Return the default configuration of ``app`` (before the environment)."""
    return {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(app.instance_path) / SQLITE_FILENAME}",
        "SECRET_KEY": None,
        "MAX_CONTENT_LENGTH": MAX_CONTENT_LENGTH,
        "WTF_CSRF_ENABLED": True,
        # Lax: the session cookie (which holds the CSRF secret) is not sent on
        # cross-site POSTs; HttpOnly is Flask's default.
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Providers injected by tests or embedding code; None means the global
        # ones of the OpenTelemetry API (a no-op unless an SDK is installed).
        "TELEMETRY_TRACER_PROVIDER": None,
        "TELEMETRY_METER_PROVIDER": None,
        "TELEMETRY_LOGGER_PROVIDER": None,
    }


def from_environment() -> dict[str, Any]:
    """Return the settings that the environment overrides."""
    found: dict[str, Any] = {}
    if database_url := os.environ.get(DATABASE_URL_ENV):
        found["SQLALCHEMY_DATABASE_URI"] = database_url
    if secret_key := os.environ.get(SECRET_KEY_ENV):
        found["SECRET_KEY"] = secret_key
    return found


def configure(app: Flask, test_config: Mapping[str, Any] | None = None) -> None:
    """Fill ``app.config``: defaults, then the environment, then ``test_config``."""
    app.config.from_mapping(defaults(app))
    app.config.from_mapping(from_environment())
    if test_config is not None:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _fallback_secret_key(app)
    if app.config["SQLALCHEMY_DATABASE_URI"] == defaults(app)["SQLALCHEMY_DATABASE_URI"]:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)


def _fallback_secret_key(app: Flask) -> str:
    """Return the key to use when none is configured (see the module docs)."""
    if app.debug or app.testing:
        return DEV_SECRET_KEY
    logger.warning(
        "%s is not set: using a random key for this process; forms stop working "
        "after a restart and across worker processes. Set %s for production.",
        SECRET_KEY_ENV,
        SECRET_KEY_ENV,
    )
    return secrets.token_hex(GENERATED_SECRET_KEY_BYTES)
