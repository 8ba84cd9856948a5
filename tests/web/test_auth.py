"""Credentials, subprotocols and Origins (gateway.web.auth)."""

from __future__ import annotations

import pytest

from gateway.web.auth import Authenticator, Credential, Scheme, origin_allowed, parse_credential, subprotocols
from gateway.web.tokens import TokenSigner

NOW = 1_800_000_000.0
SIGNER = TokenSigner(b"s" * 32)


@pytest.mark.parametrize(
    ("authorization", "offered", "expected"),
    [
        ("Token abc", [], Credential(Scheme.TOKEN, "abc")),
        ("token abc", [], Credential(Scheme.TOKEN, "abc")),
        ("Bearer xyz", [], Credential(Scheme.BEARER, "xyz")),
        ("  BEARER   xyz ", [], Credential(Scheme.BEARER, "xyz")),
        ("Basic dXNlcjpwYXNz", [], None),
        ("Token", [], None),
        (None, ["token", "abc"], Credential(Scheme.TOKEN, "abc", "token")),
        (None, ["bearer", "gw1.x"], Credential(Scheme.BEARER, "gw1.x", "bearer")),
        # Deepgram's JS SDK v5 appends its session id as a second pair.
        (None, ["token", "abc", "x-deepgram-session-id", "42"], Credential(Scheme.TOKEN, "abc", "token")),
        (None, ["token"], None),
        (None, ["chat", "v2"], None),
        (None, [], None),
        # The header wins over the subprotocols.
        ("Token header", ["token", "proto"], Credential(Scheme.TOKEN, "header")),
    ],
)
def test_credential_from_header_or_subprotocols(
    authorization: str | None, offered: list[str], expected: Credential | None
) -> None:
    """Credentials as Deepgram's clients send them."""
    assert parse_credential(authorization, offered) == expected


def test_subprotocols_from_every_header() -> None:
    """Sec-WebSocket-Protocol may come as one comma-separated header or several."""
    assert subprotocols(["token, abc", "x-deepgram-session-id,  42"]) == [
        "token",
        "abc",
        "x-deepgram-session-id",
        "42",
    ]


@pytest.mark.parametrize(
    ("credential", "streams", "mints"),
    [
        (None, False, False),
        (Credential(Scheme.TOKEN, "client-1"), True, True),
        (Credential(Scheme.BEARER, "client-2"), True, True),
        (Credential(Scheme.TOKEN, "client-10"), False, False),
        (Credential(Scheme.BEARER, SIGNER.mint(NOW, 30)), True, False),
        (Credential(Scheme.TOKEN, SIGNER.mint(NOW, 30)), True, False),
        (Credential(Scheme.BEARER, SIGNER.mint(NOW - 60, 30)), False, False),
        (Credential(Scheme.BEARER, TokenSigner(b"o" * 32).mint(NOW, 30)), False, False),
    ],
)
def test_who_may_stream_and_mint(credential: Credential | None, streams: bool, mints: bool) -> None:
    """Client tokens stream and mint; unexpired access tokens only stream."""
    auth = Authenticator({"client-1", "client-2"}, SIGNER)
    assert auth.may_stream(credential, NOW) is streams
    assert auth.is_client_token(credential) is mints


def test_without_client_tokens_everyone_passes() -> None:
    """No client tokens configured: no client authentication, as on the gRPC side."""
    auth = Authenticator(set(), SIGNER)
    assert not auth.enabled
    assert auth.may_stream(None, NOW)


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "passes"),
    [
        (None, "gw:8080", set(), True),  # not a browser
        ("http://gw:8080", "gw:8080", set(), True),  # the gateway's own page
        ("http://GW:8080/", "gw:8080", set(), True),
        ("https://gw:8080", "gw:8080", set(), True),
        ("http://evil.example", "gw:8080", set(), False),
        ("http://gw:8081", "gw:8080", set(), False),
        ("null", "gw:8080", set(), False),  # a file:// page or a sandboxed frame
        ("https://app.example", "gw:8080", {"https://app.example"}, True),
        ("https://app.example:443", "gw:8080", {"https://app.example"}, False),
        ("http://evil.example", "gw:8080", {"*"}, True),
        ("http://gw:8080", None, set(), False),
    ],
)
def test_origin_allow_list(origin: str | None, host: str | None, allowed: set[str], passes: bool) -> None:
    """Browsers pass from the gateway's own origin or an allowed one; other clients always."""
    assert origin_allowed(origin, host, allowed) is passes
