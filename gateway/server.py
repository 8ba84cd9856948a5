"""The grpc.aio server: the TranscribeService servicer, health, reflection, and the embedded
engine when no upstream is configured."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

from gateway import logs
from gateway.auth import BearerTokenInterceptor
from gateway.config import Settings
from gateway.engine_child import EngineChild, follow_state, read_state_now
from gateway.errors import EngineChildError, StartupError
from gateway.metrics import Metrics, serve_metrics
from gateway.service import SERVICE_NAME, Availability, TranscribeServicer
from gateway.session import SessionOptions
from gateway.upstream.connection import UpstreamTarget
from gateway.upstream.retry import RetryPolicy

logger = logging.getLogger(__name__)

# After the grace, how long the sessions' own UNAVAILABLE statuses get to reach their clients
# before the calls still open are cancelled.
_DRAIN_SETTLE_S = 0.5

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _enable_reflection(services: tuple[str, ...], server: grpc.aio.Server) -> None:
    """Server reflection, v1alpha and v1. grpcio-reflection implements only v1alpha
    (grpc/grpc#38576); v1 is the same protocol with the package renamed (identical messages and
    field numbers), so the one servicer also answers at v1's method path."""
    names = (*services, reflection.SERVICE_NAME, REFLECTION_V1)
    servicer = ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": v1}),)
    )


def session_options(settings: Settings, upstream_url: str) -> SessionOptions:
    """Every session's options, from the settings: the one place they are derived, so that the
    settings' defaults are the only defaults."""
    return SessionOptions(
        upstream_url=upstream_url,
        api_key=settings.api_key,
        connect_timeout_s=settings.connect_timeout_s,
        retry=RetryPolicy(
            max_attempts=settings.retry_max_attempts,
            max_elapsed_s=settings.retry_max_elapsed_s,
            initial_backoff_s=settings.retry_initial_backoff_s,
            max_backoff_s=settings.retry_max_backoff_s,
        ),
        keepalive_interval_s=settings.keepalive_interval_s,
        stall_timeout_s=settings.stall_timeout_s,
        replay_buffer_bytes=settings.replay_buffer_bytes,
        replay_preroll_s=settings.replay_preroll_s,
        backpressure_timeout_s=settings.backpressure_timeout_s,
        max_lead_s=settings.max_lead_s,
        coalesce_audio_s=settings.coalesce_audio_ms / 1000,
        max_session_s=settings.max_session_s,
        client_idle_timeout_s=settings.client_idle_timeout_s,
    )


class GatewayServer:
    """A running gateway. ``async with GatewayServer(settings) as server: ...``"""

    def __init__(self, settings: Settings, *, engine_state_fd: int | None = None) -> None:
        """``engine_state_fd``: in a worker of ``--workers N``, the pipe on which the supervisor
        says whether its engine child serves (:func:`gateway.engine_child.follow_state`)."""
        self.settings = settings
        self._engine_state_fd = engine_state_fd
        self.metrics = Metrics()
        self._stack = contextlib.AsyncExitStack()
        self._server: grpc.aio.Server | None = None
        self._servicer: TranscribeServicer | None = None
        self._availability = Availability(health.aio.HealthServicer())
        self.port = 0
        self.metrics_port = 0
        self.http_port = 0
        self.upstream_url = ""
        self.engine: EngineChild | None = None  # the supervised engine child, when it is the upstream

    @property
    def address(self) -> str:
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def __aenter__(self) -> GatewayServer:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _start(self) -> None:
        settings = self.settings
        self._stack.enter_context(logs.redacting(_secrets(settings)))
        self.upstream_url = settings.relay_url or await self._start_engine()
        options = session_options(settings, self.upstream_url)
        tokens = settings.client_tokens
        server = grpc.aio.server(
            interceptors=[BearerTokenInterceptor(tokens)] if tokens else None,
            options=_grpc_options(settings),
        )
        self._servicer = TranscribeServicer(
            options,
            self.metrics,
            self._availability,
            max_streams=settings.max_streams,
            config_timeout_s=settings.config_timeout_s,
        )
        server.add_generic_rpc_handlers((self._servicer.handler(settings.max_message_bytes),))
        health_pb2_grpc.add_HealthServicer_to_server(self._availability.health, server)
        _enable_reflection((SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
        try:
            credentials = _server_credentials(settings)
            if credentials is None:
                self.port = server.add_insecure_port(settings.listen)
            else:
                self.port = server.add_secure_port(settings.listen, credentials)
        except RuntimeError as exc:
            raise StartupError(f"cannot listen on {settings.listen}: {exc}") from exc
        if self._engine_state_fd is not None:
            # Before the first update: a worker never reads SERVING while the engine is down.
            up = read_state_now(self._engine_state_fd)
            self._availability.upstream_down = up is False
            engine_watch = asyncio.create_task(follow_state(self._engine_state_fd, self._engine_changed))
            self._stack.push_async_callback(_cancel, engine_watch)
        await server.start()
        self._server = server
        self._stack.push_async_callback(server.stop, None)
        await self._availability.update()
        # While the upstream rejects the key, a handshake now and then finds out when it is fixed.
        key_watch = asyncio.create_task(
            self._availability.watch_key(
                UpstreamTarget(self.upstream_url, settings.api_key, settings.connect_timeout_s),
                settings.key_recheck_interval_s,
            )
        )
        self._stack.push_async_callback(_cancel, key_watch)
        if settings.metrics_listen is not None:
            host, _, port = settings.metrics_listen.rpartition(":")
            try:
                metrics_server = await serve_metrics(self.metrics.registry, host, int(port))
            except OSError as exc:
                raise StartupError(f"cannot serve metrics on {settings.metrics_listen}: {exc}") from exc
            self.metrics_port = metrics_server.port
            self._stack.push_async_callback(metrics_server.close)
        if settings.http_listen is not None:
            from gateway.web.listener import web_listener

            web = web_listener(
                settings,
                session_options=options,
                metrics=self.metrics,
                availability=self._availability,
                registry=self._servicer,
                environ=os.environ,
            )
            try:
                await self._stack.enter_async_context(web)
            except OSError as exc:
                raise StartupError(f"cannot listen on {settings.http_listen}: {exc}") from exc
            self.http_port = web.port
            logger.info("serving Deepgram's /v1/listen and the web page on http://%s:%d/", web.host, web.port)
        security = "TLS" if credentials else "plaintext"
        if settings.tls_client_ca_file:
            security = "mutual TLS"
        auth = f"{len(tokens)} client token(s)" if tokens else "no client authentication"
        logger.info(
            "serving %s on %s (%s, %s), relaying to %s",
            SERVICE_NAME,
            self.address,
            security,
            auth,
            self.upstream_url,
        )
        if settings.ready_file is not None:
            _write_atomically(settings.ready_file, self.address)

    async def _engine_changed(self, up: bool) -> None:
        self._availability.upstream_down = not up
        await self._availability.update()

    async def _start_engine(self) -> str:
        child = EngineChild(
            recognizer=self.settings.engine_recognizer,
            model_dir=self.settings.engine_model_dir,
            on_change=self._engine_changed,
        )
        try:
            self.engine = await self._stack.enter_async_context(child)
        except EngineChildError as exc:
            raise StartupError(
                f"no upstream is configured (set DEEPGRAM_API_KEY or --upstream-url) and {exc}"
            ) from exc
        logger.info("no Deepgram key or upstream URL: using the embedded engine at %s", child.url)
        return child.url

    async def drain(self) -> None:
        """Graceful shutdown: refuse new streams, finalise open ones, stop within the grace period.

        The listener stays open meanwhile, so health checks read NOT_SERVING (a load balancer's
        active check takes the replica out) instead of finding the port closed. The grace is a
        hard bound: each session ends itself UNAVAILABLE (with its ResumePoint) when it is
        over, and whatever is still open a moment later (a call whose client does not read
        cannot even be told) is cancelled.
        """
        assert self._server is not None and self._servicer is not None
        grace = self.settings.drain_grace_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self._availability.draining = True
        await self._availability.update()
        sessions = list(self._servicer.sessions)
        logger.info("draining: %d open stream(s), %g s grace", len(sessions), grace)
        for session in sessions:
            await session.drain(grace)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline + _DRAIN_SETTLE_S):
                await self._servicer.idle.wait()
        left = len(self._servicer.sessions)
        # What is left is cancelled now: the grace period is over.
        await self._server.stop(max(deadline - loop.time(), 0.0) if not left else 0.0)
        if left:
            logger.warning("drain: %d stream(s) did not finish within %g s and were cancelled", left, grace)

    async def wait_for_termination(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()
        # The server has stopped: no session's work may outlive it (each closes its upstream).
        if self._servicer is not None:
            await asyncio.gather(*(session.close() for session in list(self._servicer.sessions)))


def _secrets(settings: Settings) -> set[str]:
    """What the logs must never show: the key, client tokens, credentials in the upstream URL."""
    found = {settings.api_key or "", *settings.client_tokens, *logs.url_secrets(settings.upstream_url)}
    return found - {""}


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _grpc_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        # The servicer refuses requests over --max-message-bytes with an ErrorInfo of its own;
        # gRPC's limit, twice that, is the hard bound on what one request can make it buffer.
        ("grpc.max_receive_message_length", 2 * settings.max_message_bytes),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        # Ping idle clients so dead peers (a vanished pod, a silent NAT drop) free their streams.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Accept client keepalive pings as often as every 10 s (grpc-go, grpc-java and grpc-node
        # clients are commonly set to 10-30 s) without answering GOAWAY "too_many_pings".
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 0),
    ]


def _server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)
