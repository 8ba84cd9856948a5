"""The embedded engine's websocket server: Deepgram's live ``/v1/listen`` on a local recogniser.

I/O only: the handshake decisions, options, messages and endpointing come from ``protocol`` and
``segmenter``, admission from ``capacity``; one accepted socket is a ``stream.Stream``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from transcribe_engine import protocol
from transcribe_engine.capacity import Admission, CostMeter
from transcribe_engine.config import EngineConfig
from transcribe_engine.decode_pool import DecodePool
from transcribe_engine.protocol import HandshakeError, ListenOptions, ModelInfo
from transcribe_engine.recognizer import Recognizer, RecognizerSettings, load_recognizer
from transcribe_engine.stream import Stream
from transcribe_engine.vad import load_vad_session

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Admission:
    options: ListenOptions
    request_id: str
    load: float


class EngineServer:
    """Serve ``/v1/listen`` on ``config.listen`` (or a given socket) until the context exits."""

    def __init__(self, config: EngineConfig, *, sock: socket.socket | None = None) -> None:
        self._config = config
        # A supervisor may own the listening socket, so it outlives restarts of this process.
        self._sock = sock
        self._recognizer: Recognizer | None = None
        self._vad_session: Any = None
        self._pool: DecodePool | None = None
        self._server: Server | None = None
        self.meter = CostMeter()
        self._admission = Admission(workers=config.decode_workers, max_streams=config.max_streams)
        self._pending: dict[ServerConnection, _Admission] = {}
        self._active_load = 0.0
        self._active_streams = 0
        self._streams: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def max_streams(self) -> int:
        """Concurrent real-time streams admitted now (with interim results, one channel)."""
        return self._admission.streams(self.meter)

    @property
    def decodes(self) -> int:
        """Decodes run so far (for tests and benchmarks)."""
        return self._pool.completed if self._pool is not None else 0

    @property
    def active_streams(self) -> int:
        return self._active_streams

    @property
    def model_info(self) -> ModelInfo:
        assert self._recognizer is not None
        return self._recognizer.model_info

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the engine is not serving")
        host, port = self._server.sockets[0].getsockname()[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{port}{protocol.LISTEN_PATH}"

    async def __aenter__(self) -> EngineServer:
        try:
            return await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def _start(self) -> EngineServer:
        config = self._config
        settings = RecognizerSettings(
            cpu_threads=config.cpu_threads,
            decode_workers=config.decode_workers,
            beam_size_final=config.beam_size_final,
            beam_size_interim=config.beam_size_interim,
        )
        # Loading the model and the VAD takes a while and blocks; keep the loop responsive.
        self._recognizer = await asyncio.to_thread(
            load_recognizer, config.recognizer, model_dir=config.model_dir, settings=settings
        )
        self._vad_session = await asyncio.to_thread(load_vad_session)
        self._pool = DecodePool(
            config.decode_workers, lambda seconds, final: self.meter.decoded(seconds, final=final)
        )
        where: dict[str, Any] = (
            {"sock": self._sock} if self._sock is not None else {"host": config.host, "port": config.port}
        )
        self._server = await serve(
            self._handle,
            **where,
            process_request=self._process_request,
            process_response=self._process_response,
            select_subprotocol=self._select_subprotocol,
            server_header=None,
            max_size=2**22,
            ping_interval=None,  # Deepgram relies on its own idle rule, not pings
        )
        logger.info(
            "engine ready: %s recognizer=%s model=%s max_streams=%d",
            self.url,
            config.recognizer,
            self.model_info.name,
            self.max_streams,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None
        for task in list(self._streams):
            task.cancel()
        if self._streams:
            await asyncio.gather(*self._streams, return_exceptions=True)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown)
            self._pool = None

    async def serve_forever(self) -> None:
        if self._server is None:
            raise RuntimeError("use 'async with EngineServer(config)' first")
        await self._server.serve_forever()

    # ---- handshake ----

    def _select_subprotocol(
        self, connection: ServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        chosen = protocol.select_subprotocol(subprotocols)
        return Subprotocol(chosen) if chosen is not None else None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        request_id = protocol.new_request_id()
        target = urlsplit(request.path)
        if target.path == protocol.HEALTH_PATH:
            # For a supervisor's probe: answered from the event loop, so it also proves the
            # loop is not stuck.
            return connection.respond(HTTPStatus.OK, "OK\n")
        if target.path.rstrip("/") != protocol.LISTEN_PATH:
            return _reject(connection, protocol.NOT_FOUND, request_id)
        offered = protocol.header_values(request.headers.get_all("Sec-WebSocket-Protocol"))
        credentials = protocol.parse_credentials(request.headers.get("Authorization"), offered)
        if not protocol.is_authorized(self._config.key, credentials):
            return _reject(connection, protocol.INVALID_AUTH, request_id)
        try:
            options = protocol.parse_options(target.query)
        except protocol.OptionsError as exc:
            return _reject(connection, protocol.bad_request(str(exc)), request_id)
        assert self._recognizer is not None
        if self._recognizer.english_only and not _is_english(options.language):
            return _reject(
                connection,
                protocol.bad_request("No such model/language/tier combination found."),
                request_id,
            )
        load = self.meter.stream_cost(
            interim_results=options.interim_results, channels=options.output_channels
        )
        if not self._admission.admits(
            active_streams=self._active_streams, active_load=self._active_load, load=load
        ):
            return _reject(connection, protocol.too_many_requests(self.max_streams), request_id)
        self._pending[connection] = _Admission(options, request_id, load)
        self._active_load += load
        self._active_streams += 1
        self._idle.clear()
        return None

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        admission = self._pending.get(connection)
        if admission is not None:
            response.headers["dg-request-id"] = admission.request_id
            if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
                self._release(self._pending.pop(connection))
        return None

    def _release(self, admission: _Admission) -> None:
        self._active_load = max(0.0, self._active_load - admission.load)
        self._active_streams -= 1
        if self._active_streams == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no stream is open or being opened (for draining and tests)."""
        await self._idle.wait()

    async def _handle(self, connection: ServerConnection) -> None:
        admission = self._pending.pop(connection)
        assert self._recognizer is not None and self._pool is not None
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            stream = Stream(
                connection,
                admission.options,
                admission.request_id,
                config=self._config,
                recognizer=self._recognizer,
                vad_session=self._vad_session,
                pool=self._pool,
                meter=self.meter,
            )
            await stream.run()
        finally:
            self._streams.discard(task)
            self._release(admission)


def _is_english(language: str) -> bool:
    return language.lower().split("-")[0] == "en"


def _reject(connection: ServerConnection, error: HandshakeError, request_id: str) -> Response:
    response = connection.respond(error.status, error.body(request_id))
    headers = Headers((name, value) for name, value in response.headers.raw_items() if name != "Content-Type")
    headers["Content-Type"] = "application/json"
    headers["dg-request-id"] = request_id
    headers["dg-error"] = error.err_msg
    return Response(response.status_code, response.reason_phrase, headers, response.body)


async def run_server(config: EngineConfig, ready: Callable[[EngineServer], Awaitable[None]]) -> None:
    """Serve until cancelled, after telling ``ready`` where."""
    async with EngineServer(config) as server:
        await ready(server)
        await server.serve_forever()
