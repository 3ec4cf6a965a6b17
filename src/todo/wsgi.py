"""The WSGI entry point for production servers: ``gunicorn todo.wsgi:app``.

Importing this module creates the app (and upgrades the database schema); it
reads its settings from the environment (see :mod:`todo.config`).
"""

from __future__ import annotations

from todo import create_app

app = create_app()
