"""What an HTTP request to the web listener asks for (pure: method and path in, a route out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

LISTEN_PATH: Final = "/v1/listen"
GRANT_PATH: Final = "/v1/auth/grant"
STATIC_PREFIX: Final = "/static/"
INDEX_FILE: Final = "index.html"

CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


class Kind(Enum):
    LISTEN = "listen"
    GRANT = "grant"
    PREFLIGHT = "preflight"  # a browser's CORS check before a cross-origin grant
    FILE = "file"
    NOT_FOUND = "not found"
    METHOD_NOT_ALLOWED = "method not allowed"


@dataclass(frozen=True, slots=True)
class Route:
    kind: Kind
    file: str = ""  # for FILE: the static file's name
    allow: str = ""  # for METHOD_NOT_ALLOWED: the Allow header


def route(method: str, path: str, files: Mapping[str, object]) -> Route:
    """Route ``method path`` (path without its query); ``files`` are the static files served."""
    if path.rstrip("/") == LISTEN_PATH:
        return Route(Kind.LISTEN) if method == "GET" else Route(Kind.METHOD_NOT_ALLOWED, allow="GET")
    if path.rstrip("/") == GRANT_PATH:
        if method == "POST":
            return Route(Kind.GRANT)
        if method == "OPTIONS":
            return Route(Kind.PREFLIGHT)
        return Route(Kind.METHOD_NOT_ALLOWED, allow="POST, OPTIONS")
    if path in ("/", "/" + INDEX_FILE):
        name = INDEX_FILE
    elif path.startswith(STATIC_PREFIX):
        name = path.removeprefix(STATIC_PREFIX)
    else:
        return Route(Kind.NOT_FOUND)
    # Only files known at start-up are served: no path is ever joined onto the file system.
    if name not in files:
        return Route(Kind.NOT_FOUND)
    if method not in ("GET", "HEAD"):
        return Route(Kind.METHOD_NOT_ALLOWED, allow="GET, HEAD")
    return Route(Kind.FILE, file=name)


def content_type(name: str) -> str:
    suffix = name[name.rfind(".") :] if "." in name else ""
    return CONTENT_TYPES.get(suffix, "application/octet-stream")
