"""Who may open ``/v1/listen`` and mint access tokens: credentials, subprotocols, Origins.

Credentials come as Deepgram's clients send them: ``Authorization: Token <t>`` or ``Bearer <t>``
(scheme case-insensitive), or, from browsers, which cannot set headers on a websocket, the
subprotocol pair ``token, <t>`` / ``bearer, <t>``; the server then answers the scheme as the
selected subprotocol, or the browser fails the socket. A credential is accepted when it is one
of the client tokens (``GATEWAY_AUTH_TOKENS``, as for gRPC) or an unexpired access token; only
a client token may mint access tokens.

Origins: a browser names the page's origin on every websocket and cross-origin request. Without
client tokens anyone could use the gateway from any page a visitor opens, so only the gateway's
own page (same origin), non-browser clients (no Origin) and the configured allow-list pass.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

from gateway.web.tokens import TokenSigner

ANY_ORIGIN: Final = "*"


class Scheme(StrEnum):
    TOKEN = "token"
    BEARER = "bearer"


@dataclass(frozen=True, slots=True)
class Credential:
    scheme: Scheme
    secret: str = field(repr=False)
    # The subprotocol the client offered for it, to be echoed back as selected.
    subprotocol: str | None = None


def parse_credential(authorization: str | None, offered: Sequence[str]) -> Credential | None:
    """The client's credential: the Authorization header, else the subprotocol pair."""
    if authorization:
        scheme, _, secret = authorization.strip().partition(" ")
        if scheme.lower() in Scheme.__members__.values() and secret.strip():
            return Credential(Scheme(scheme.lower()), secret.strip())
        return None
    for i, name in enumerate(offered[:-1]):
        if name.lower() in Scheme.__members__.values():
            return Credential(Scheme(name.lower()), offered[i + 1], subprotocol=name)
    return None


def subprotocols(header_values: Sequence[str]) -> list[str]:
    """The offered subprotocols from every ``Sec-WebSocket-Protocol`` header, in order."""
    return [item.strip() for value in header_values for item in value.split(",") if item.strip()]


class Authenticator:
    """Checks credentials against the client tokens and the access-token signer."""

    def __init__(self, client_tokens: Collection[str], signer: TokenSigner) -> None:
        self._tokens = tuple(t.encode() for t in client_tokens)
        self.signer = signer

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def is_client_token(self, credential: Credential | None) -> bool:
        if not self.enabled:
            return True
        if credential is None:
            return False
        presented = credential.secret.encode()
        # Compare against every token so that timing says nothing about which one nearly matched.
        matched = False
        for accepted in self._tokens:
            matched |= hmac.compare_digest(presented, accepted)
        return matched

    def may_stream(self, credential: Credential | None, now: float) -> bool:
        if self.is_client_token(credential):
            return True
        return credential is not None and self.signer.verify(credential.secret, now)


def origin_allowed(origin: str | None, host: str | None, allowed: Collection[str]) -> bool:
    """Whether a request from ``origin`` (its Origin header) to ``host`` (its Host header) passes."""
    if origin is None:
        return True  # not a browser: Origin is a browser's statement, others need not send it
    normalized = normalize_origin(origin)
    if ANY_ORIGIN in allowed or normalized in allowed:
        return True
    parts = urlsplit(normalized)
    return host is not None and parts.scheme in ("http", "https") and parts.netloc == host.lower()


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()
