"""The one classifier: retryable or not, and the status a client gets."""

from __future__ import annotations

import grpc
import pytest

from gateway.errors import (
    ClientError,
    ConfigError,
    Reason,
    RetriesExhaustedError,
    SessionError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamHandshakeError,
    UpstreamStalledError,
)
from gateway.protocol.outcome import classify, final_status, upstream_message

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
        (1009, False, S.INTERNAL),
    ],
)
def test_close_codes(code: int, retryable: bool, status: grpc.StatusCode) -> None:
    outcome = classify(UpstreamClosedError(code, "reason text", "req"))
    assert (outcome.retryable, outcome.code, outcome.reason) == (retryable, status, f"close {code}")


def test_data_error_explains_itself() -> None:
    outcome = classify(UpstreamClosedError(1008, "DATA-0000: could not decode", None))
    assert "DATA-0000" in outcome.message
    assert "encoding" in outcome.message


@pytest.mark.parametrize("error", [UpstreamConnectError("refused"), UpstreamStalledError(15, "r")])
def test_network_and_stalls_are_retryable(error: UpstreamConnectError | UpstreamStalledError) -> None:
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


def test_final_status_of_exhausted_retries_keeps_the_cause() -> None:
    code, message = final_status(RetriesExhaustedError(UpstreamHandshakeError(429, "{}", None), 6))
    assert code == S.RESOURCE_EXHAUSTED
    assert "after 6 attempts" in message
    code, _ = final_status(RetriesExhaustedError(UpstreamClosedError(1011, "x", None), 3))
    assert code == S.UNAVAILABLE


def test_final_status_of_client_and_session_errors() -> None:
    assert final_status(ConfigError("sample_rate", "bad"))[0] == S.INVALID_ARGUMENT
    assert final_status(ClientError("two configs"))[0] == S.INVALID_ARGUMENT
    assert final_status(SessionError(S.OUT_OF_RANGE, Reason.SESSION_TOO_LONG, "too long")) == (
        S.OUT_OF_RANGE,
        "too long",
    )
