"""What the web listener serves for each request (gateway.web.routes)."""

from __future__ import annotations

import pytest

from gateway.web.routes import Kind, Route, content_type, route

FILES = {"index.html": b"", "app.js": b"", "style.css": b""}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/listen", Route(Kind.LISTEN)),
        ("GET", "/v1/listen/", Route(Kind.LISTEN)),
        ("POST", "/v1/listen", Route(Kind.METHOD_NOT_ALLOWED, allow="GET")),
        ("POST", "/v1/auth/grant", Route(Kind.GRANT)),
        ("OPTIONS", "/v1/auth/grant", Route(Kind.PREFLIGHT)),
        ("GET", "/v1/auth/grant", Route(Kind.METHOD_NOT_ALLOWED, allow="POST, OPTIONS")),
        ("GET", "/", Route(Kind.FILE, file="index.html")),
        ("GET", "/index.html", Route(Kind.FILE, file="index.html")),
        ("HEAD", "/static/app.js", Route(Kind.FILE, file="app.js")),
        ("DELETE", "/static/app.js", Route(Kind.METHOD_NOT_ALLOWED, allow="GET, HEAD")),
        ("GET", "/static/../config.py", Route(Kind.NOT_FOUND)),
        ("GET", "/static/%2e%2e/x", Route(Kind.NOT_FOUND)),
        ("GET", "/static/", Route(Kind.NOT_FOUND)),
        ("GET", "/metrics", Route(Kind.NOT_FOUND)),
    ],
)
def test_route(method: str, path: str, expected: Route) -> None:
    """Only the listen and grant endpoints and the known static files are served."""
    assert route(method, path, FILES) == expected


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("x.png", "image/png"),
        ("README", "application/octet-stream"),
    ],
)
def test_content_type(name: str, kind: str) -> None:
    """Each served file gets its media type (module scripts require text/javascript)."""
    assert content_type(name) == kind
