"""The grpc.aio server: the TranscribeService servicer, health, reflection, and the embedded
engine when no upstream is configured."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway._pb.transcribe.v1 import transcribe_pb2 as pb
from gateway._pb.transcribe.v1 import transcribe_pb2_grpc as pb_grpc
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.service import TranscribeServicer
from gateway.session import SessionOptions
from gateway.upstream.retry import RetryPolicy

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TranscribeService"].full_name


class StartupError(GatewayError):
    """The gateway cannot start as configured."""


class GatewayServer:
    """A running gateway. ``async with GatewayServer(settings) as server: ...``"""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self.port = 0
        self.upstream_url = ""

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
        self.upstream_url = settings.relay_url or await self._start_engine()
        options = SessionOptions(
            upstream_url=self.upstream_url,
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
        )
        server = grpc.aio.server()
        pb_grpc.add_TranscribeServiceServicer_to_server(TranscribeServicer(options), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        try:
            self.port = server.add_insecure_port(settings.listen)
        except RuntimeError as exc:
            raise StartupError(f"cannot listen on {settings.listen}: {exc}") from exc
        await server.start()
        self._server = server
        self._stack.push_async_callback(server.stop, None)
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving %s on %s, relaying to %s", SERVICE_NAME, self.address, self.upstream_url)
        if settings.ready_file is not None:
            _write_atomically(settings.ready_file, self.address)

    async def _start_engine(self) -> str:
        try:
            from gateway.engine.config import EngineConfig
            from gateway.engine.server import EngineServer
        except ImportError as exc:
            raise StartupError(
                "no upstream is configured (set DEEPGRAM_API_KEY or --upstream-url) and the embedded "
                f"engine is not installed ({exc}); install the `engine` extra"
            ) from exc
        engine = EngineServer(
            EngineConfig(recognizer=self.settings.engine_recognizer, model_dir=self.settings.engine_model_dir)
        )
        await self._stack.enter_async_context(engine)
        logger.info("no Deepgram key or upstream URL: using the embedded engine at %s", engine.url)
        return engine.url

    async def wait_for_termination(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)
