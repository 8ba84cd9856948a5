"""Short-lived access tokens, so that a web page never holds a long-lived client token.

A service that holds a client token calls ``POST /v1/auth/grant`` (as with Deepgram's temporary
keys) and hands the ``access_token`` to the page, which opens ``/v1/listen`` with it before it
expires. A token is ``gw1.<expiry>.<nonce>.<signature>``: the expiry in Unix seconds, a random
nonce, and an HMAC-SHA256 of both under the gateway's signing secret. Nothing is stored, so any
gateway process that has the same secret accepts it: with ``--workers N`` or several replicas,
set ``GATEWAY_WEB_TOKEN_SECRET`` in their environment, or leave it unset and let each derive the
secret from the client tokens they all share. Only the handshake checks a token: an open stream
outlives it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

PREFIX: Final = "gw1"
MAX_TTL_S: Final = 3600
_DERIVATION_LABEL: Final = b"transcribe-gateway web access tokens v1"
_NONCE_BYTES: Final = 12
_MAX_TOKEN_LENGTH: Final = 200


def derive_secret(configured: str | None, client_tokens: Collection[str]) -> bytes:
    """The signing secret: the configured one, else one derived from the client tokens.

    Every process configured with the same tokens derives the same secret, and a holder of a
    single client token learns nothing it could not already do (it may mint tokens anyway).
    Without either, a random secret: tokens then verify only in this process, which is enough
    when there is no client authentication to pass.
    """
    if configured:
        return hashlib.sha256(_DERIVATION_LABEL + b"\0" + configured.encode()).digest()
    if client_tokens:
        joined = b"\0".join(sorted(t.encode() for t in client_tokens))
        return hmac.new(_DERIVATION_LABEL, joined, hashlib.sha256).digest()
    return secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class TokenSigner:
    """Mints and verifies access tokens under one secret; ``now`` is Unix time in seconds."""

    secret: bytes = field(repr=False)

    def mint(self, now: float, ttl_s: int) -> str:
        if not 1 <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be 1 to {MAX_TTL_S} seconds")
        body = f"{PREFIX}.{int(now) + ttl_s}.{secrets.token_hex(_NONCE_BYTES)}"
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, now: float) -> bool:
        """True when ``token`` was minted under this secret and has not expired."""
        if len(token) > _MAX_TOKEN_LENGTH:
            return False
        body, _, signature = token.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1].isdigit():
            return False
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return False
        return now < int(parts[1])

    def _sign(self, body: str) -> str:
        digest = hmac.new(self.secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
