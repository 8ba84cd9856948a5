"""One redaction for every log record: known secrets and credential-shaped text, both formats."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Literal

import pytest

from gateway import logs
from transcribe_engine import logs as engine_logs

KEY = "dg-key-0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"upstream said: invalid key {KEY}", "upstream said: invalid key [redacted]"),
        (f"{KEY}{KEY}", "[redacted][redacted]"),
        (
            "relaying to wss://user:pa55word@api.example.com/v1/listen",
            "relaying to wss://[redacted]@api.example.com/v1/listen",
        ),
        ("ws://tok3n@host:1/x", "ws://[redacted]@host:1/x"),
        (
            "GET /v1/listen?model=nova-3&token=abc123 HTTP/1.1",
            "GET /v1/listen?model=nova-3&token=[redacted] HTTP/1.1",
        ),
        (
            "wss://h/v1/listen?key=abc&api_key=def&sig=x",
            "wss://h/v1/listen?key=[redacted]&api_key=[redacted]&sig=[redacted]",
        ),
        ("wss://h/v1/listen?Token=abc", "wss://h/v1/listen?Token=[redacted]"),
        ("> Authorization: Token abcdef", "> Authorization: [redacted]"),
        ("('authorization', 'Bearer t-123')", "('authorization', '[redacted]')"),
        ("model=nova-3&keywords=hello", "model=nova-3&keywords=hello"),
        ("a key, a token, nothing secret", "a key, a token, nothing secret"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert logs.Redactor([KEY]).redact(text) == expected


def test_url_secrets() -> None:
    url = "wss://user:pa55word@h/v1/listen?model=x&token=t0ken&key=k3y"
    assert logs.url_secrets(url) == {"user", "pa55word", "t0ken", "k3y"}
    assert logs.url_secrets("wss://h/v1/listen?model=nova-3") == set()
    assert logs.url_secrets(None) == set()


def test_secrets_shorter_than_the_minimum_are_not_replaced_everywhere() -> None:
    assert logs.Redactor(["abc"]).redact("abc abcdef") == "abc abcdef"


@pytest.fixture
def configured(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure("DEBUG", request.param)
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield logging.getLogger("gateway.test"), stream
    root.handlers[:], level = saved
    root.setLevel(level)


@pytest.mark.parametrize("configured", ["text", "json"], indirect=True)
def test_every_level_and_part_of_a_record_is_redacted(configured: tuple[logging.Logger, io.StringIO]) -> None:
    """Message, arguments, exception text, stack and session context, at DEBUG to ERROR."""
    logger, stream = configured
    with logs.redacting([KEY]):
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
            logger.log(level, "body %s", f'{{"err_msg":"bad {KEY}"}}')
        adapter = logging.LoggerAdapter(logger, {"session_id": "s", "upstream_request_id": KEY})
        adapter.info("with context")
        try:
            int(KEY)
        except ValueError:
            logger.exception("boom", stack_info=True)
    during = stream.getvalue()
    logger.info("after the block: %s", KEY)
    assert "boom" in during
    assert "Traceback" in during
    assert during.count("[redacted]") == 6  # four levels, the context, the exception
    assert KEY not in during
    assert KEY in stream.getvalue()[len(during) :], "redacting() ends with its block"


def test_configure_knows_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", KEY)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.configure("INFO", "text")
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("gateway.test").warning("echoed %s", KEY)
        assert stream.getvalue().rstrip().endswith("echoed [redacted]")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.getLogger("websockets.server").setLevel(logging.NOTSET)


@pytest.mark.parametrize("configure", [logs.configure, engine_logs.configure], ids=["gateway", "engine"])
@pytest.mark.parametrize(
    ("level", "websockets_level"), [("INFO", logging.WARNING), ("DEBUG", logging.NOTSET)]
)
def test_websockets_per_connection_lines_only_at_debug(
    configure: Callable[[str, Literal["text", "json"]], None], level: str, websockets_level: int
) -> None:
    """Every health probe and page load is a websockets INFO line: shown only at DEBUG."""
    root, server = logging.getLogger(), logging.getLogger("websockets.server")
    saved = (root.handlers[:], root.level, server.level)
    server.setLevel(logging.NOTSET)
    try:
        configure(level, "text")
        assert server.level == websockets_level
    finally:
        root.handlers[:], root_level, server_level = saved
        root.setLevel(root_level)
        server.setLevel(server_level)
