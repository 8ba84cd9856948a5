"""What a failure means: retry it or not, and which gRPC status the client gets.

One pure classifier of upstream failures (:func:`classify`), applied by the retry policy
(``gateway.upstream.retry``), and one pure function from any gateway error to the status a client
gets (:func:`error_status`): code, ``ErrorInfo`` reason and message, following the design's
status table. Every error status the gateway sends is decided here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.errors import (
    ClientCancelledError,
    ClientError,
    GatewayError,
    Reason,
    RetriesExhaustedError,
    SessionError,
    SessionFailedError,
    UnauthenticatedError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHandshakeError,
    UpstreamOversizeError,
    UpstreamStalledError,
)

# Close codes after which a new connection may well succeed: abnormal closure (no close frame),
# internal error (Deepgram's NET-0000/NET-0001), service restart, try again later, going away.
RETRYABLE_CLOSE_CODES: Final = frozenset({1001, 1006, 1011, 1012, 1013})
# Handshake statuses worth retrying: rate limiting and server-side failures.
RETRYABLE_HTTP_STATUSES: Final = frozenset({408, 429, *range(500, 600)})
DATA_ERROR_CLOSE_CODE: Final = 1008
_MAX_UPSTREAM_TEXT: Final = 300
ERROR_DOMAIN: Final = "transcribe.gateway"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision for one failure."""

    retryable: bool
    code: grpc.StatusCode
    message: str
    # Short and of low cardinality: used in UpstreamEvent.reason and as a metrics label.
    reason: str
    # What the client's ErrorInfo says when this failure ends the stream.
    error_reason: Reason = Reason.UPSTREAM_UNAVAILABLE


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
    if isinstance(error, UpstreamOversizeError):
        # A glitch of that connection as far as the gateway can tell; the retry budget, which
        # resets only on progress, bounds an upstream that repeats it.
        return Outcome(True, grpc.StatusCode.UNAVAILABLE, f"{error}", "oversize")
    return Outcome(True, grpc.StatusCode.UNAVAILABLE, f"{error}", "error")


def _handshake(error: UpstreamHandshakeError) -> Outcome:
    status = error.status
    detail = upstream_message(error.body)
    reason = f"http {status}"
    suffix = f" (upstream request id {error.request_id})" if error.request_id else ""
    if status in RETRYABLE_HTTP_STATUSES:
        if status == 429:
            code, error_reason = grpc.StatusCode.RESOURCE_EXHAUSTED, Reason.UPSTREAM_RATE_LIMITED
        else:
            code, error_reason = grpc.StatusCode.UNAVAILABLE, Reason.UPSTREAM_UNAVAILABLE
        message = f"upstream answered HTTP {status}: {detail}{suffix}"
        return Outcome(True, code, message, reason, error_reason)
    if status == 400:
        return Outcome(
            False,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"upstream rejected the configuration: {detail}{suffix}",
            reason,
            Reason.UPSTREAM_CONFIG_REJECTED,
        )
    if status in (401, 403):
        return Outcome(
            False,
            grpc.StatusCode.FAILED_PRECONDITION,
            f"upstream rejected the gateway's credentials (HTTP {status}); the gateway's operator "
            f"must check its Deepgram API key{suffix}",
            reason,
            Reason.UPSTREAM_KEY_REJECTED,
        )
    if status == 402:
        return Outcome(
            False,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"upstream account is out of credit (HTTP 402): {detail}{suffix}",
            reason,
            Reason.UPSTREAM_PAYMENT_REQUIRED,
        )
    return Outcome(
        False,
        grpc.StatusCode.FAILED_PRECONDITION,
        f"upstream answered HTTP {status} ({detail}); the gateway's upstream URL may be wrong{suffix}",
        reason,
        Reason.UPSTREAM_REFUSED,
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
            Reason.UPSTREAM_BAD_AUDIO,
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
        Reason.UPSTREAM_CLOSED,
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


@dataclass(frozen=True, slots=True)
class ErrorStatus:
    """The status a call ends with: gRPC code, ErrorInfo reason, message."""

    code: grpc.StatusCode
    reason: Reason
    message: str


def error_status(error: GatewayError) -> ErrorStatus:
    """The status a client gets for a call that ended with ``error``: the one place it is decided."""
    if isinstance(error, SessionFailedError):
        error = error.cause
    if isinstance(error, ClientError):
        code = (
            grpc.StatusCode.RESOURCE_EXHAUSTED
            if error.reason == Reason.MESSAGE_TOO_LARGE
            else grpc.StatusCode.INVALID_ARGUMENT
        )
        return ErrorStatus(code, error.reason, str(error))
    if isinstance(error, SessionError):
        return ErrorStatus(error.code, error.reason, str(error))
    if isinstance(error, UnauthenticatedError):
        return ErrorStatus(grpc.StatusCode.UNAUTHENTICATED, Reason.UNAUTHENTICATED, str(error))
    if isinstance(error, ClientCancelledError):
        return ErrorStatus(grpc.StatusCode.CANCELLED, Reason.CLIENT_CANCELLED, str(error))
    if isinstance(error, RetriesExhaustedError):
        outcome = classify(error.last)
        attempts = "attempt" if error.attempts == 1 else "attempts"
        message = f"{outcome.message} (gave up after {error.attempts} {attempts})"
        return ErrorStatus(outcome.code, outcome.error_reason, message)
    if isinstance(error, UpstreamError):
        outcome = classify(error)
        return ErrorStatus(outcome.code, outcome.error_reason, outcome.message)
    return ErrorStatus(
        grpc.StatusCode.INTERNAL, Reason.INTERNAL, "internal gateway error; see the gateway's logs"
    )


def status_trailers(
    status: ErrorStatus, *details: Message, **metadata: str
) -> tuple[tuple[str, str | bytes], ...]:
    """The trailing metadata of a rich status: an ErrorInfo (``metadata`` in it), then ``details``."""
    info = error_details_pb2.ErrorInfo(reason=status.reason, domain=ERROR_DOMAIN, metadata=metadata)
    rich = status_pb2.Status(code=status.code.value[0], message=status.message)
    for detail in (info, *details):
        packed = any_pb2.Any()
        packed.Pack(detail)
        rich.details.append(packed)
    trailers: tuple[tuple[str, str | bytes], ...] = rpc_status.to_status(rich).trailing_metadata
    return trailers
