"""What an upstream failure means: retry it or not, and which gRPC status the client gets.

One pure classifier, applied by the retry policy (``gateway.upstream.retry``) and by the
servicer when a session ends in error, following the status table of the design.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

import grpc

from gateway.errors import (
    ClientError,
    GatewayError,
    RetriesExhaustedError,
    SessionError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHandshakeError,
    UpstreamStalledError,
)

# Close codes after which a new connection may well succeed: abnormal closure (no close frame),
# internal error (Deepgram's NET-0000/NET-0001), service restart, try again later, going away.
RETRYABLE_CLOSE_CODES: Final = frozenset({1001, 1006, 1011, 1012, 1013})
# Handshake statuses worth retrying: rate limiting and server-side failures.
RETRYABLE_HTTP_STATUSES: Final = frozenset({408, 429, *range(500, 600)})
DATA_ERROR_CLOSE_CODE: Final = 1008
_MAX_UPSTREAM_TEXT: Final = 300


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision for one failure."""

    retryable: bool
    code: grpc.StatusCode
    message: str
    # Short and of low cardinality: used in UpstreamEvent.reason and as a metrics label.
    reason: str


def classify(error: UpstreamError) -> Outcome:
    """Decide whether ``error`` is worth a new connection, and what it means if it is final."""
    if isinstance(error, UpstreamHandshakeError):
        return _handshake(error)
    if isinstance(error, UpstreamClosedError):
        return _closed(error)
    if isinstance(error, UpstreamStalledError):
        return Outcome(True, grpc.StatusCode.UNAVAILABLE, f"{error}", "stalled")
    if isinstance(error, UpstreamConnectError):
        return Outcome(True, grpc.StatusCode.UNAVAILABLE, f"{error}", "network")
    return Outcome(True, grpc.StatusCode.UNAVAILABLE, f"{error}", "error")


def _handshake(error: UpstreamHandshakeError) -> Outcome:
    status = error.status
    detail = upstream_message(error.body)
    reason = f"http {status}"
    suffix = f" (upstream request id {error.request_id})" if error.request_id else ""
    if status in RETRYABLE_HTTP_STATUSES:
        code = grpc.StatusCode.RESOURCE_EXHAUSTED if status == 429 else grpc.StatusCode.UNAVAILABLE
        return Outcome(True, code, f"upstream answered HTTP {status}: {detail}{suffix}", reason)
    if status == 400:
        return Outcome(
            False,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"upstream rejected the configuration: {detail}{suffix}",
            reason,
        )
    if status in (401, 403):
        return Outcome(
            False,
            grpc.StatusCode.FAILED_PRECONDITION,
            f"upstream rejected the gateway's credentials (HTTP {status}); the gateway's operator "
            f"must check its Deepgram API key{suffix}",
            reason,
        )
    if status == 402:
        return Outcome(
            False,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"upstream account is out of credit (HTTP 402): {detail}{suffix}",
            reason,
        )
    return Outcome(
        False,
        grpc.StatusCode.FAILED_PRECONDITION,
        f"upstream answered HTTP {status} ({detail}); the gateway's upstream URL may be wrong{suffix}",
        reason,
    )


def _closed(error: UpstreamClosedError) -> Outcome:
    code = error.code
    reason = f"close {code}" if code is not None else "close"
    text = error.reason[:_MAX_UPSTREAM_TEXT] or "no reason given"
    if code == DATA_ERROR_CLOSE_CODE:
        return Outcome(
            False,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"upstream could not decode the audio ({text}); check config.encoding and "
            "config.sample_rate against the bytes sent",
            reason,
        )
    # A normal close (1000) before the session asked for one means the upstream ended the
    # session on its own: a new connection is the remedy, as for a service restart.
    if code is None or code == 1000 or code in RETRYABLE_CLOSE_CODES:
        return Outcome(True, grpc.StatusCode.UNAVAILABLE, f"upstream closed the connection: {text}", reason)
    return Outcome(
        False,
        grpc.StatusCode.INTERNAL,
        f"upstream closed the connection with code {code}: {text}",
        reason,
    )


def upstream_message(body: str) -> str:
    """The human part of a Deepgram error body (``err_msg`` or ``message``), else the raw text."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("err_msg", "message", "details", "err_code", "category"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value[:_MAX_UPSTREAM_TEXT]
    return body.strip()[:_MAX_UPSTREAM_TEXT] or "no message"


def final_status(error: GatewayError) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client gets for a session that ended with ``error``."""
    if isinstance(error, ClientError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, SessionError):
        return error.code, str(error)
    if isinstance(error, RetriesExhaustedError):
        outcome = classify(error.last)
        attempts = "attempt" if error.attempts == 1 else "attempts"
        return outcome.code, f"{outcome.message} (gave up after {error.attempts} {attempts})"
    if isinstance(error, UpstreamError):
        outcome = classify(error)
        return outcome.code, outcome.message
    return grpc.StatusCode.INTERNAL, str(error)
