"""The gateway's exceptions. They carry facts; :mod:`gateway.protocol.outcome` decides what
they mean for the client (gRPC status) and for the retry policy (retryable or not).

::

    GatewayError
    ├── ClientError                 the client broke the stream rules (carries its Reason)
    │   ├── ConfigError             an invalid StreamingConfig value (names the field)
    │   ├── QueryTooLongError       the config makes an upstream URL longer than allowed
    │   └── MessageTooLargeError    a request over --max-message-bytes
    ├── UnauthenticatedError        no accepted client token
    ├── ClientCancelledError        the client cancelled the call
    ├── SessionError                the session must end with a given status (a limit, ...)
    ├── SessionFailedError          a session ended in error (the cause, and where to resume)
    ├── UpstreamError               anything that ended an upstream connection
    │   ├── UpstreamHandshakeError  the upgrade was refused with an HTTP status
    │   ├── UpstreamClosedError     the websocket closed (code, reason)
    │   ├── UpstreamConnectError    network error or timeout before the upgrade
    │   └── UpstreamStalledError    the upstream stopped answering
    ├── RetriesExhaustedError       every retry of a retryable UpstreamError failed
    ├── StartupError                the gateway cannot start as configured
    │   └── EngineChildError        the embedded engine's child process could not start
    └── WorkerError                 a worker process could not start, or stopped
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from transcribe.v1 import transcribe_pb2 as pb


class Reason(StrEnum):
    """Every ``ErrorInfo.reason`` the gateway sends (domain ``transcribe.gateway``): one declared
    list, documented in the proto and the README. Clients may match on these; never rename one."""

    # The client broke the stream rules.
    INVALID_CONFIG = "INVALID_CONFIG"
    CONFIG_NOT_FIRST = "CONFIG_NOT_FIRST"
    CONFIG_TIMEOUT = "CONFIG_TIMEOUT"
    INVALID_REQUEST = "INVALID_REQUEST"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    QUERY_TOO_LONG = "QUERY_TOO_LONG"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    # A limit of the gateway.
    TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
    SESSION_TOO_LONG = "SESSION_TOO_LONG"
    CLIENT_IDLE = "CLIENT_IDLE"
    BACKPRESSURE = "BACKPRESSURE"
    DRAINING = "DRAINING"
    CLIENT_CANCELLED = "CLIENT_CANCELLED"
    # The upstream.
    UPSTREAM_KEY_REJECTED = "UPSTREAM_KEY_REJECTED"
    UPSTREAM_CONFIG_REJECTED = "UPSTREAM_CONFIG_REJECTED"
    UPSTREAM_PAYMENT_REQUIRED = "UPSTREAM_PAYMENT_REQUIRED"
    UPSTREAM_RATE_LIMITED = "UPSTREAM_RATE_LIMITED"
    UPSTREAM_BAD_AUDIO = "UPSTREAM_BAD_AUDIO"
    UPSTREAM_REFUSED = "UPSTREAM_REFUSED"
    UPSTREAM_CLOSED = "UPSTREAM_CLOSED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UPSTREAM_NOT_REPLAYABLE = "UPSTREAM_NOT_REPLAYABLE"
    INTERNAL = "INTERNAL"


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class ClientError(GatewayError):
    """The client broke the stream's rules; ``reason`` says which."""

    def __init__(self, message: str, reason: Reason = Reason.INVALID_REQUEST) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(ClientError):
    """A StreamingConfig field has an invalid value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"config.{field}: {problem}", Reason.INVALID_CONFIG)
        self.field = field
        self.problem = problem


class QueryTooLongError(ClientError):
    """The config's upstream query string is longer than the gateway sends."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"the config makes an upstream query of {length} characters, over the {limit} allowed: "
            "send fewer or shorter keyterms, keywords, search terms, replacements, tags or extras",
            Reason.QUERY_TOO_LONG,
        )
        self.length = length
        self.limit = limit


class MessageTooLargeError(ClientError):
    """A request message is larger than ``--max-message-bytes``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"a request of {size} bytes is over the gateway's limit of {limit} bytes: send smaller "
            "audio chunks",
            Reason.MESSAGE_TOO_LARGE,
        )
        self.size = size
        self.limit = limit


class UnauthenticatedError(GatewayError):
    """The call carries no accepted client token; the message says what was wrong."""


class SessionError(GatewayError):
    """The session must end with status ``code`` and ``reason``: a limit was hit, or nothing else
    can be done."""

    def __init__(self, code: grpc.StatusCode, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class UpstreamError(GatewayError):
    """An upstream connection failed or ended unexpectedly."""

    request_id: str | None = None


class UpstreamHandshakeError(UpstreamError):
    """The upstream refused the websocket upgrade with an HTTP status."""

    def __init__(self, status: int, body: str, request_id: str | None) -> None:
        super().__init__(f"upstream refused the connection with HTTP {status}")
        self.status = status
        self.body = body
        self.request_id = request_id


class UpstreamClosedError(UpstreamError):
    """The upstream websocket closed before the session was done with it."""

    def __init__(self, code: int | None, reason: str, request_id: str | None) -> None:
        super().__init__(f"upstream closed the connection (code {code}): {reason}")
        self.code = code
        self.reason = reason
        self.request_id = request_id


class UpstreamOversizeError(UpstreamError):
    """The upstream sent a message over the gateway's size limit; the gateway closed with 1009."""

    def __init__(self, limit_bytes: int, request_id: str | None) -> None:
        super().__init__(f"upstream sent a message over the gateway's {limit_bytes // 2**20} MiB limit")
        self.limit_bytes = limit_bytes
        self.request_id = request_id


class UpstreamConnectError(UpstreamError):
    """The upstream could not be reached: DNS, TCP, TLS or handshake timeout."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"upstream unreachable: {detail}")
        self.detail = detail


class UpstreamStalledError(UpstreamError):
    """The upstream accepted audio but sent nothing back for too long."""

    def __init__(self, silent_for_s: float, request_id: str | None) -> None:
        super().__init__(f"upstream sent nothing for {silent_for_s:.1f} s")
        self.silent_for_s = silent_for_s
        self.request_id = request_id


class RetriesExhaustedError(GatewayError):
    """Every allowed attempt to (re)connect failed; ``last`` is the final failure."""

    def __init__(self, last: UpstreamError, attempts: int) -> None:
        super().__init__(f"upstream failed after {attempts} attempts: {last}")
        self.last = last
        self.attempts = attempts


class ClientCancelledError(GatewayError):
    """The client cancelled the call; the upstream is dropped without a flush."""


class SessionFailedError(GatewayError):
    """A session ended in error; carries where the client can resume."""

    def __init__(self, cause: GatewayError, resume: pb.ResumePoint) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.resume = resume


class StartupError(GatewayError):
    """The gateway cannot start as configured."""


class EngineChildError(StartupError):
    """The embedded engine's child process could not be started."""


class WorkerError(GatewayError):
    """A worker could not start, or stopped unexpectedly."""
