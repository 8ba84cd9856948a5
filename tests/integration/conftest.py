"""The integration tests run the real gateway in front of a scripted stand-in; the helpers live in
tests/support/grpc_gateway.py. Their names stay importable from here for the test modules that
still import them from this file."""

from __future__ import annotations

from tests.support.grpc_gateway import (
    LINEAR16,
    TEST_KEY,
    DetailT,
    Running,
    chunks,
    collect,
    expect_error,
    requests,
    running_gateway,
    status_detail,
    words,
)

__all__ = [
    "LINEAR16",
    "TEST_KEY",
    "DetailT",
    "Running",
    "chunks",
    "collect",
    "expect_error",
    "requests",
    "running_gateway",
    "status_detail",
    "words",
]
