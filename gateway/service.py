"""The TranscribeService servicer: a thin adapter between a gRPC stream and a Session."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import HealthServicer
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import (
    ClientCancelledError,
    ClientError,
    ConfigError,
    GatewayError,
    MessageTooLargeError,
    Reason,
    RetriesExhaustedError,
    SessionError,
    SessionFailedError,
    UpstreamError,
    UpstreamHandshakeError,
)
from gateway.metrics import Metrics
from gateway.protocol import deepgram
from gateway.protocol.outcome import error_status, status_trailers
from gateway.session import Session, SessionOptions
from gateway.upstream.connection import UpstreamTarget, open_upstream

logger = logging.getLogger(__name__)

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
        # Set while the key is rejected: wakes the re-check (watch_key).
        self._key_check_due = asyncio.Event()

    async def set_key_rejected(self, rejected: bool) -> None:
        if rejected == self.key_rejected:
            return
        self.key_rejected = rejected
        if rejected:
            self._key_check_due.set()
        else:
            self._key_check_due.clear()
        await self.update()

    async def watch_key(self, target: UpstreamTarget, max_interval_s: float) -> None:
        """While the key is rejected, try an upstream handshake now and then (backoff doubling
        up to ``max_interval_s``), and report SERVING again as soon as one is accepted.

        Behind a readiness-gated balancer no stream reaches a replica that is NOT_SERVING, so
        without this it would never find out that the key was fixed.
        """
        while True:
            await self._key_check_due.wait()
            interval = max_interval_s / 8
            while self.key_rejected:
                await asyncio.sleep(interval)
                interval = min(interval * 2, max_interval_s)
                if not self.key_rejected:
                    break
                if await _key_accepted(target):
                    logger.info("the upstream accepts the key again: the service is SERVING")
                    await self.set_key_rejected(False)

    async def update(self) -> None:
        response = health_pb2.HealthCheckResponse
        server_ok = not self.draining
        service_ok = server_ok and not self.key_rejected and not self.upstream_down
        await self.health.set("", response.SERVING if server_ok else response.NOT_SERVING)
        await self.health.set(SERVICE_NAME, response.SERVING if service_ok else response.NOT_SERVING)


async def _key_accepted(target: UpstreamTarget) -> bool | None:
    """Whether the upstream accepts the key (a handshake, closed at once); None if unknown."""
    try:
        connection = await open_upstream(target)
    except UpstreamHandshakeError as exc:
        return False if _rejected_key(exc) else None
    except UpstreamError:
        return None
    async with connection:
        await connection.send_text(deepgram.CLOSE_STREAM)
    return True


def request_deserializer(max_bytes: int) -> Callable[[bytes], pb.StreamTranscribeRequest]:
    """Parse one request, refusing it as a ClientError when it is too large or not a valid
    message, so that the servicer answers with a status of its own instead of grpc's UNKNOWN."""

    def parse(data: bytes) -> pb.StreamTranscribeRequest:
        if len(data) > max_bytes:
            raise MessageTooLargeError(len(data), max_bytes)
        try:
            return pb.StreamTranscribeRequest.FromString(data)
        except DecodeError as exc:
            raise ClientError(
                "a request is not a valid transcribe.v1.StreamTranscribeRequest message",
                Reason.INVALID_REQUEST,
            ) from exc

    return parse


class TranscribeServicer:
    """Validates the first request, then hands the stream to a Session.

    Not a subclass of the generated servicer: its stub types a stream's handler as a generator,
    and this one is a coroutine that writes through its context (see :meth:`handler`).
    """

    def __init__(
        self,
        options: SessionOptions,
        metrics: Metrics,
        availability: Availability,
        *,
        max_streams: int,
        config_timeout_s: float = 10.0,
    ) -> None:
        self._options = options
        self._metrics = metrics
        self._availability = availability
        self._max_streams = max_streams
        self._config_timeout_s = config_timeout_s
        self.sessions: set[Session] = set()
        # Streams still waiting for their config: they hold a slot of --max-streams too.
        self._waiting = 0
        # Set while no stream is open: what a drain waits for.
        self.idle = asyncio.Event()
        self.idle.set()

    async def StreamTranscribe(
        self,
        request_iterator: AsyncIterator[pb.StreamTranscribeRequest],
        context: grpc.aio.ServicerContext[pb.StreamTranscribeRequest, pb.StreamTranscribeResponse],
    ) -> None:
        # A coroutine, not a generator: the session writes each response from the task that
        # made it (context.write), with no queue and no generators between them.
        metrics = self._metrics
        metrics.grpc_started.labels(*_RPC_LABELS).inc()
        code = grpc.StatusCode.OK
        try:
            await self._stream(request_iterator, context)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            metrics.grpc_handled.labels(*_RPC_LABELS, code.name).inc()
            metrics.sessions.labels(code.name).inc()

    def handler(self, max_message_bytes: int) -> grpc.GenericRpcHandler:
        """The service's handler, with a request parser that refuses bad requests cleanly."""
        method = grpc.stream_stream_rpc_method_handler(
            self.StreamTranscribe,
            request_deserializer=request_deserializer(max_message_bytes),
            response_serializer=pb.StreamTranscribeResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"StreamTranscribe": method})

    async def _stream(
        self,
        request_iterator: AsyncIterator[pb.StreamTranscribeRequest],
        context: grpc.aio.ServicerContext[pb.StreamTranscribeRequest, pb.StreamTranscribeResponse],
    ) -> None:
        if self._availability.draining:
            await self._fail(
                context,
                SessionError(
                    grpc.StatusCode.UNAVAILABLE,
                    Reason.DRAINING,
                    "the gateway is shutting down; retry elsewhere",
                ),
            )
        if len(self.sessions) + self._waiting >= self._max_streams:
            await self._fail(
                context,
                SessionError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    Reason.TOO_MANY_STREAMS,
                    f"the gateway is at its limit of {self._max_streams} concurrent streams; retry later",
                ),
            )
        first: pb.StreamTranscribeRequest | None = None
        self._waiting += 1
        try:
            async with asyncio.timeout(self._config_timeout_s):
                first = await anext(aiter(request_iterator), None)
        except TimeoutError:
            await self._fail(
                context,
                SessionError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    Reason.CONFIG_TIMEOUT,
                    f"the stream sent no config within {self._config_timeout_s:g} s",
                ),
            )
        except ClientError as exc:
            await self._fail(context, exc)
        finally:
            self._waiting -= 1
        if first is not None:
            self._metrics.grpc_msg_received.labels(*_RPC_LABELS).inc()
        if first is None:
            await self._fail(
                context, ClientError("the stream ended before its config", Reason.CONFIG_NOT_FIRST)
            )
        assert first is not None
        kind = first.WhichOneof("request")
        if kind != "config":
            await self._fail(
                context,
                ClientError(
                    f"the first request must carry config, got {kind or 'an empty request'}",
                    Reason.CONFIG_NOT_FIRST,
                ),
            )
        try:
            deepgram.validate(first.config)
        except ConfigError as exc:
            await self._fail(context, exc, field=exc.field)
        except ClientError as exc:
            await self._fail(context, exc)
        session = Session(
            first.config,
            self._options,
            self._metrics,
            requests_received=self._metrics.grpc_msg_received.labels(*_RPC_LABELS),
            responses_sent=self._metrics.grpc_msg_sent.labels(*_RPC_LABELS),
        )
        self.sessions.add(session)
        self.idle.clear()
        self._metrics.active_sessions.inc()
        availability = self._availability

        async def write(response: pb.StreamTranscribeResponse) -> None:
            if availability.key_rejected and response.HasField("session_started"):
                await availability.set_key_rejected(False)
            await context.write(response)

        try:
            await session.run(request_iterator, write, after_input=_cancelled_check(context))
        except SessionFailedError as exc:
            if _rejected_key(exc.cause):
                await self._availability.set_key_rejected(True)
            status = error_status(exc)
            details = [exc.resume] if status.code == grpc.StatusCode.UNAVAILABLE else []
            session.log.info("session ended: %s %s: %s", status.code.name, status.reason, status.message)
            await self._fail(context, exc, *details, session_id=session.id)
        finally:
            self.sessions.discard(session)
            if not self.sessions:
                self.idle.set()
            self._metrics.active_sessions.dec()

    async def _fail(
        self,
        context: grpc.aio.ServicerContext[pb.StreamTranscribeRequest, pb.StreamTranscribeResponse],
        error: GatewayError,
        *details: Message,
        **metadata: str,
    ) -> None:
        """End the call with ``error``'s status and an ErrorInfo (plus ``details``)."""
        status = error_status(error)
        key = self._options.api_key
        if key and key in status.message:
            # The key never comes back in an upstream's answer, but a status must not leak it even then.
            status = dataclasses.replace(status, message=status.message.replace(key, "[redacted]"))
        await context.abort(status.code, status.message, status_trailers(status, *details, **metadata))


def _rejected_key(error: BaseException) -> bool:
    if isinstance(error, RetriesExhaustedError):
        error = error.last
    return isinstance(error, UpstreamHandshakeError) and error.status in (401, 403)


def _cancelled_check(
    context: grpc.aio.ServicerContext[pb.StreamTranscribeRequest, pb.StreamTranscribeResponse],
) -> Callable[[], Awaitable[None]]:
    """What the session runs when the client's requests end, so that a cancelled call does not
    pass for a half-close.

    gRPC ends the request iterator the same way for both, and may report the cancellation a
    moment later; a short settle keeps a cancel from flushing the upstream politely.
    """

    async def check() -> None:
        await asyncio.sleep(_HALF_CLOSE_SETTLE_S)
        if context.cancelled():
            raise ClientCancelledError("the client cancelled the call")

    return check
