"""The TranscribeService servicer: a thin adapter between a gRPC stream and a Session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import HealthServicer
from grpc_status import rpc_status
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc

from gateway.errors import (
    ClientCancelledError,
    ConfigError,
    GatewayError,
    RetriesExhaustedError,
    UpstreamError,
    UpstreamHandshakeError,
)
from gateway.metrics import Metrics
from gateway.protocol import deepgram
from gateway.protocol.outcome import classify, final_status
from gateway.session import Session, SessionFailedError, SessionOptions

ERROR_DOMAIN = "transcribe.gateway"
_HALF_CLOSE_SETTLE_S = 0.01


SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TranscribeService"].full_name
_RPC_LABELS = ("bidi_stream", SERVICE_NAME, "StreamTranscribe")


class Availability:
    """What grpc.health.v1 reports.

    The server (``""``, what liveness probes ask) is NOT_SERVING only while draining; the
    service is also NOT_SERVING while the upstream rejects the gateway's key, which fails every
    stream until an operator fixes it. A restart would not fix the key, so it must not fail
    liveness; it should take the replica out of load balancing. The same holds while the
    embedded engine child is down (``upstream_down``): the supervisor restarts it.
    """

    def __init__(self, health: HealthServicer) -> None:
        self.health = health
        self.draining = False
        self.key_rejected = False
        self.upstream_down = False

    async def update(self) -> None:
        response = health_pb2.HealthCheckResponse
        server_ok = not self.draining
        service_ok = server_ok and not self.key_rejected and not self.upstream_down
        await self.health.set("", response.SERVING if server_ok else response.NOT_SERVING)
        await self.health.set(SERVICE_NAME, response.SERVING if service_ok else response.NOT_SERVING)


class TranscribeServicer(pb_grpc.TranscribeServiceServicer):
    """Validates the first request, then hands the stream to a Session."""

    def __init__(
        self, options: SessionOptions, metrics: Metrics, availability: Availability, *, max_streams: int
    ) -> None:
        self._options = options
        self._metrics = metrics
        self._availability = availability
        self._max_streams = max_streams
        self.sessions: set[Session] = set()
        # Set while no stream is open: what a drain waits for.
        self.idle = asyncio.Event()
        self.idle.set()

    async def StreamTranscribe(
        self,
        request_iterator: AsyncIterator[pb.StreamTranscribeRequest],
        context: grpc.aio.ServicerContext[pb.StreamTranscribeRequest, pb.StreamTranscribeResponse],
    ) -> AsyncIterator[pb.StreamTranscribeResponse]:
        metrics = self._metrics
        metrics.grpc_started.labels(*_RPC_LABELS).inc()
        sent = metrics.grpc_msg_sent.labels(*_RPC_LABELS)
        code = grpc.StatusCode.OK
        try:
            async for response in self._stream(request_iterator, context):
                sent.inc()
                yield response
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            metrics.grpc_handled.labels(*_RPC_LABELS, code.name).inc()
            metrics.sessions.labels(code.name).inc()

    async def _stream(
        self,
        request_iterator: AsyncIterator[pb.StreamTranscribeRequest],
        context: grpc.aio.ServicerContext[pb.StreamTranscribeRequest, pb.StreamTranscribeResponse],
    ) -> AsyncIterator[pb.StreamTranscribeResponse]:
        if self._availability.draining:
            await self._abort(
                context, grpc.StatusCode.UNAVAILABLE, "the gateway is shutting down; retry elsewhere"
            )
        if len(self.sessions) >= self._max_streams:
            await self._abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the gateway is at its limit of {self._max_streams} concurrent streams; retry later",
            )
        first = await anext(aiter(request_iterator), None)
        if first is not None:
            self._metrics.grpc_msg_received.labels(*_RPC_LABELS).inc()
        if first is None:
            await self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the stream ended before its config")
        assert first is not None
        kind = first.WhichOneof("request")
        if kind != "config":
            await self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the first request must carry config, got {kind or 'an empty request'}",
            )
        try:
            deepgram.validate(first.config)
        except ConfigError as exc:
            await self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                str(exc),
                _error_info("INVALID_CONFIG", field=exc.field),
            )
        session = Session(first.config, self._options, self._metrics)
        self.sessions.add(session)
        self.idle.clear()
        self._metrics.active_sessions.inc()
        try:
            requests = _client_requests(request_iterator, context, self._metrics)
            async for response in session.run(requests):
                if self._availability.key_rejected and response.HasField("session_started"):
                    self._availability.key_rejected = False
                    await self._availability.update()
                yield response
        except SessionFailedError as exc:
            code, message = final_status(exc.cause)
            if _rejected_key(exc.cause) and not self._availability.key_rejected:
                self._availability.key_rejected = True
                await self._availability.update()
            details = [_error_info(_reason(exc.cause), session_id=session.id)]
            if code == grpc.StatusCode.UNAVAILABLE:
                details.append(exc.resume)
            session.log.info("session ended: %s: %s", code.name, message)
            await self._abort(context, code, message, *details)
        finally:
            self.sessions.discard(session)
            if not self.sessions:
                self.idle.set()
            self._metrics.active_sessions.dec()

    async def _abort(
        self,
        context: grpc.aio.ServicerContext[pb.StreamTranscribeRequest, pb.StreamTranscribeResponse],
        code: grpc.StatusCode,
        message: str,
        *details: error_details_pb2.ErrorInfo | pb.ResumePoint,
    ) -> None:
        message = self._redact(message)
        status = status_pb2.Status(code=code.value[0], message=message)
        for detail in details:
            packed = any_pb2.Any()
            packed.Pack(detail)
            status.details.append(packed)
        await context.abort(code, message, rpc_status.to_status(status).trailing_metadata)

    def _redact(self, text: str) -> str:
        # The key never comes back in an upstream's answer, but a status must not leak it even then.
        key = self._options.api_key
        return text.replace(key, "[redacted]") if key else text


def _rejected_key(error: GatewayError) -> bool:
    if isinstance(error, RetriesExhaustedError):
        error = error.last
    return isinstance(error, UpstreamHandshakeError) and error.status in (401, 403)


async def _client_requests(
    requests: AsyncIterator[pb.StreamTranscribeRequest],
    context: grpc.aio.ServicerContext[pb.StreamTranscribeRequest, pb.StreamTranscribeResponse],
    metrics: Metrics,
) -> AsyncIterator[pb.StreamTranscribeRequest]:
    """The client's requests after the config, counted, where a cancelled call does not pass
    for a half-close.

    gRPC ends the request iterator the same way for both, and may report the cancellation a
    moment later; a short settle keeps a cancel from flushing the upstream politely.
    """
    received = metrics.grpc_msg_received.labels(*_RPC_LABELS)
    async for request in requests:
        received.inc()
        yield request
    await asyncio.sleep(_HALF_CLOSE_SETTLE_S)
    if context.cancelled():
        raise ClientCancelledError("the client cancelled the call")


def _reason(error: GatewayError) -> str:
    """A stable, machine-readable reason for ErrorInfo."""
    if isinstance(error, RetriesExhaustedError):
        error = error.last
    if isinstance(error, UpstreamError):
        return "UPSTREAM_" + classify(error).reason.upper().replace(" ", "_")
    return type(error).__name__.removesuffix("Error").upper() or "ERROR"


def _error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
