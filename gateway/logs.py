"""Log output: text for people, JSON lines for machines. Only the CLI configures logging.

Sessions log through a LoggerAdapter that adds ``session_id`` and ``upstream_request_id``;
both formats show them when a record carries them.

Every record passes one redaction (:class:`Redactor`, a filter on the handlers) before either
format sees it: the secrets the gateway knows (its upstream key, client tokens, credentials in
its upstream URL) and anything shaped like a credential (``user:pass@`` in a URL, ``?token=``,
``?key=`` and similar query parameters, ``Authorization`` values) become ``[redacted]``, whatever
the level and whoever logged it, since an upstream may echo the key back in an error body or a
close reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

LogFormat = Literal["text", "json"]
_CONTEXT = ("session_id", "upstream_request_id")
REDACTED = "[redacted]"
# Shorter strings would turn ordinary words into "[redacted]"; credentials are longer.
MIN_SECRET_CHARS = 4
# Query parameters that carry credentials.
_CREDENTIAL_PARAMS = (
    "token",
    "key",
    "api_key",
    "apikey",
    "access_token",
    "auth",
    "password",
    "passwd",
    "secret",
    "signature",
    "sig",
)
_SHAPES = (
    # userinfo of a URL: scheme://user:pass@host
    (re.compile(r"(?<=://)[^/?#@\s]+@"), REDACTED + "@"),
    # credential-like query parameters
    (
        re.compile(r"(?i)([?&;](?:%s)=)[^&#\s'\"]*" % "|".join(_CREDENTIAL_PARAMS)),  # noqa: UP031
        r"\1" + REDACTED,
    ),
    # an Authorization header or metadata value, with or without its scheme
    (
        re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*['\"]?)(?:(?:token|bearer|basic)\s+)?[^\s'\",;]+"),
        r"\1" + REDACTED,
    ),
)


class Redactor(logging.Filter):
    """Replaces known secrets and credential-shaped text in every record it sees."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: dict[str, int] = {}
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                self._secrets[secret] = self._secrets.get(secret, 0) + 1
        self._compile()

    def remove(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret in self._secrets:
                self._secrets[secret] -= 1
                if not self._secrets[secret]:
                    del self._secrets[secret]
        self._compile()

    def _compile(self) -> None:
        # Longest first, so that a secret containing another is replaced whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        for shape, replacement in _SHAPES:
            text = shape.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key in _CONTEXT:
            value = getattr(record, key, None)
            if isinstance(value, str) and value:
                setattr(record, key, self.redact(value))
        return True


def url_secrets(url: str | None) -> set[str]:
    """The credentials inside a URL: its user name and password, and credential-like parameters."""
    if not url:
        return set()
    parts = urlsplit(url)
    found = {value for value in (parts.username, parts.password) if value}
    found |= {value for name, value in parse_qsl(parts.query) if name.lower() in _CREDENTIAL_PARAMS}
    return found


def _environment_secrets() -> set[str]:
    names = ("DEEPGRAM_API_KEY", "GATEWAY_DEEPGRAM_API_KEY", "GATEWAY_UPSTREAM_URL", "GATEWAY_AUTH_TOKENS")
    found: set[str] = set()
    for name in names:
        value = os.environ.get(name, "")
        if name.endswith("URL"):
            found |= url_secrets(value)
        else:
            found |= {part.strip() for part in value.split(",") if part.strip()}
    return found


@contextlib.contextmanager
def redacting(secrets: Iterable[str]) -> Iterator[None]:
    """Redact ``secrets`` too, in every handler configure() set up, until the block ends."""
    wanted = [s for s in secrets if s]
    redactors = [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, Redactor)]
    for redactor in redactors:
        redactor.add(wanted)
    try:
        yield
    finally:
        for redactor in redactors:
            redactor.remove(wanted)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, session context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT:
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info or record.exc_text:
            # The redactor leaves the (redacted) traceback text in exc_text.
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in _CONTEXT if getattr(record, key, None))
        return f"{text} [{context}]" if context else text


def configure(level: str, fmt: LogFormat) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(Redactor(_environment_secrets()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # websockets' server logs every connection and every plain HTTP answer (each health probe,
    # each page load) at INFO; below DEBUG that drowns the sessions' own lines.
    if root.level > logging.DEBUG:
        logging.getLogger("websockets.server").setLevel(logging.WARNING)
