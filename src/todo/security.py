"""CSRF protection and security headers, for every response.

Every HTML form carries a CSRF token in a hidden ``csrf_token`` field
(Flask-WTF's :class:`~flask_wtf.csrf.CSRFProtect` checks it on every POST; a
missing or wrong token is a 400). The JSON API is exempt: it accepts only
``application/json`` bodies, which a cross-site form cannot send.

Headers set on every response (pages, API, errors, static files):

- ``Content-Security-Policy``: only this origin's styles and scripts, no inline
  script or style, no framing, forms post only here.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``,
  ``X-Frame-Options: DENY`` (for browsers without ``frame-ancestors``).
"""

from __future__ import annotations

from flask import Flask, Response
from flask_wtf.csrf import CSRFProtect  # type: ignore[import-untyped]

csrf = CSRFProtect()

#: The page needs nothing but its own stylesheet and icon: no inline code, no
#: other origin, no plugins; it may not be framed, nor change its base URL.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

#: Headers added to every response.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def init_app(app: Flask) -> None:
    """Turn on CSRF protection and the security headers for ``app``."""
    csrf.init_app(app)
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    """Add :data:`SECURITY_HEADERS` to ``response``."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
