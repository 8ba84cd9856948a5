"""The one classifier: retryable or not, and the status a client gets."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import (
    ClientCancelledError,
    ClientError,
    ConfigError,
    GatewayError,
    MessageTooLargeError,
    QueryTooLongError,
    Reason,
    RetriesExhaustedError,
    SessionError,
    SessionFailedError,
    UnauthenticatedError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamHandshakeError,
    UpstreamOversizeError,
    UpstreamStalledError,
)
from gateway.protocol.outcome import classify, error_status, status_trailers, upstream_message

S = grpc.StatusCode


@pytest.mark.parametrize(
    ("status", "retryable", "code"),
    [
        (400, False, S.INVALID_ARGUMENT),
        (401, False, S.FAILED_PRECONDITION),
        (402, False, S.RESOURCE_EXHAUSTED),
        (403, False, S.FAILED_PRECONDITION),
        (404, False, S.FAILED_PRECONDITION),
        (405, False, S.FAILED_PRECONDITION),
        (408, True, S.UNAVAILABLE),
        (429, True, S.RESOURCE_EXHAUSTED),
        (500, True, S.UNAVAILABLE),
        (502, True, S.UNAVAILABLE),
        (503, True, S.UNAVAILABLE),
        (504, True, S.UNAVAILABLE),
    ],
)
def test_handshake_statuses(status: int, retryable: bool, code: grpc.StatusCode) -> None:
    outcome = classify(UpstreamHandshakeError(status, '{"err_msg":"why"}', "req-1"))
    assert (outcome.retryable, outcome.code, outcome.reason) == (retryable, code, f"http {status}")
    assert "req-1" in outcome.message


@pytest.mark.parametrize(
    ("code", "retryable", "status"),
    [
        (1000, True, S.UNAVAILABLE),  # closed before CloseStream was sent: the upstream ended early
        (1001, True, S.UNAVAILABLE),
        (1006, True, S.UNAVAILABLE),
        (1011, True, S.UNAVAILABLE),
        (1012, True, S.UNAVAILABLE),
        (1013, True, S.UNAVAILABLE),
        (1008, False, S.INVALID_ARGUMENT),
        (1002, False, S.INTERNAL),
        (1003, False, S.INTERNAL),
        (1009, False, S.INTERNAL),  # the upstream found the gateway's message too big
    ],
)
def test_close_codes(code: int, retryable: bool, status: grpc.StatusCode) -> None:
    outcome = classify(UpstreamClosedError(code, "reason text", "req"))
    assert (outcome.retryable, outcome.code, outcome.reason) == (retryable, status, f"close {code}")


def test_data_error_explains_itself() -> None:
    outcome = classify(UpstreamClosedError(1008, "DATA-0000: could not decode", None))
    assert "DATA-0000" in outcome.message
    assert "encoding" in outcome.message


@pytest.mark.parametrize(
    "error",
    [UpstreamConnectError("refused"), UpstreamStalledError(15, "r"), UpstreamOversizeError(2**24, "r")],
)
def test_network_stalls_and_oversize_messages_are_retryable(
    error: UpstreamConnectError | UpstreamStalledError | UpstreamOversizeError,
) -> None:
    outcome = classify(error)
    assert outcome.retryable
    assert outcome.code == S.UNAVAILABLE


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"err_code":"Bad Request","err_msg":"No such model.","request_id":"x"}', "No such model."),
        ('{"category":"INVALID","message":"modern shape","request_id":"x"}', "modern shape"),
        ("plain text body", "plain text body"),
        ("", "no message"),
    ],
)
def test_upstream_message(body: str, message: str) -> None:
    assert upstream_message(body) == message


def test_error_status_of_exhausted_retries_keeps_the_cause() -> None:
    status = error_status(RetriesExhaustedError(UpstreamHandshakeError(429, "{}", None), 6))
    assert (status.code, status.reason) == (S.RESOURCE_EXHAUSTED, Reason.UPSTREAM_RATE_LIMITED)
    assert "after 6 attempts" in status.message
    status = error_status(RetriesExhaustedError(UpstreamClosedError(1011, "x", None), 3))
    assert (status.code, status.reason) == (S.UNAVAILABLE, Reason.UPSTREAM_UNAVAILABLE)


_RESUME = pb.ResumePoint(committed_seconds=1.0)


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (ConfigError("sample_rate", "bad"), S.INVALID_ARGUMENT, Reason.INVALID_CONFIG),
        (ClientError("two configs"), S.INVALID_ARGUMENT, Reason.INVALID_REQUEST),
        (ClientError("audio first", Reason.CONFIG_NOT_FIRST), S.INVALID_ARGUMENT, Reason.CONFIG_NOT_FIRST),
        (QueryTooLongError(9000, 8192), S.INVALID_ARGUMENT, Reason.QUERY_TOO_LONG),
        (MessageTooLargeError(9000, 4096), S.RESOURCE_EXHAUSTED, Reason.MESSAGE_TOO_LARGE),
        (UnauthenticatedError("invalid token"), S.UNAUTHENTICATED, Reason.UNAUTHENTICATED),
        (ClientCancelledError("cancelled"), S.CANCELLED, Reason.CLIENT_CANCELLED),
        (
            SessionError(S.OUT_OF_RANGE, Reason.SESSION_TOO_LONG, "long"),
            S.OUT_OF_RANGE,
            Reason.SESSION_TOO_LONG,
        ),
        (
            SessionError(S.DEADLINE_EXCEEDED, Reason.CLIENT_IDLE, "idle"),
            S.DEADLINE_EXCEEDED,
            Reason.CLIENT_IDLE,
        ),
        (SessionError(S.UNAVAILABLE, Reason.DRAINING, "bye"), S.UNAVAILABLE, Reason.DRAINING),
        (UpstreamHandshakeError(400, "{}", None), S.INVALID_ARGUMENT, Reason.UPSTREAM_CONFIG_REJECTED),
        (UpstreamHandshakeError(401, "{}", None), S.FAILED_PRECONDITION, Reason.UPSTREAM_KEY_REJECTED),
        (UpstreamHandshakeError(403, "{}", None), S.FAILED_PRECONDITION, Reason.UPSTREAM_KEY_REJECTED),
        (UpstreamHandshakeError(402, "{}", None), S.RESOURCE_EXHAUSTED, Reason.UPSTREAM_PAYMENT_REQUIRED),
        (UpstreamHandshakeError(404, "{}", None), S.FAILED_PRECONDITION, Reason.UPSTREAM_REFUSED),
        (UpstreamClosedError(1008, "DATA-0000", None), S.INVALID_ARGUMENT, Reason.UPSTREAM_BAD_AUDIO),
        (UpstreamClosedError(4000, "odd", None), S.INTERNAL, Reason.UPSTREAM_CLOSED),
        (UpstreamStalledError(25, None), S.UNAVAILABLE, Reason.UPSTREAM_UNAVAILABLE),
        (
            SessionFailedError(SessionError(S.RESOURCE_EXHAUSTED, Reason.BACKPRESSURE, "slow"), _RESUME),
            S.RESOURCE_EXHAUSTED,
            Reason.BACKPRESSURE,
        ),
        (GatewayError("a bug"), S.INTERNAL, Reason.INTERNAL),
    ],
)
def test_error_status_decides_code_and_reason(
    error: GatewayError, code: grpc.StatusCode, reason: Reason
) -> None:
    """Every gateway error maps to one status code and one declared ErrorInfo reason."""
    status = error_status(error)
    assert (status.code, status.reason) == (code, reason)
    assert status.reason in set(Reason)
    assert status.message


def test_unexpected_errors_do_not_show_their_text() -> None:
    """An error the gateway did not expect says 'see the logs', not its internals."""
    assert "secret detail" not in error_status(GatewayError("secret detail")).message


def test_status_trailers_carry_error_info_then_details() -> None:
    status = error_status(SessionError(S.UNAVAILABLE, Reason.DRAINING, "bye"))
    trailers = dict(status_trailers(status, _RESUME, session_id="s1"))
    rich = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert (rich.code, rich.message) == (S.UNAVAILABLE.value[0], "bye")
    info = error_details_pb2.ErrorInfo()
    assert rich.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "DRAINING",
        "transcribe.gateway",
        {"session_id": "s1"},
    )
    point = pb.ResumePoint()
    assert rich.details[1].Unpack(point)
    assert point == _RESUME
