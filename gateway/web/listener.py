"""The web listener: HTTP and websockets on one port (``--http-listen``).

``/v1/listen`` speaks Deepgram's live protocol and runs each stream on a
:class:`gateway.session.Session`, registered with the gRPC servicer's sessions so that
``--max-streams`` counts both doors and a drain reaches both. The opening handshake waits
(briefly) for the session's upstream to answer, so that a refusal there (a bad model, an
unreachable upstream) becomes the HTTP status a Deepgram client expects, not a socket that
opens and closes. ``POST /v1/auth/grant`` mints access tokens; ``/`` serves the page.

I/O only: the decisions are in the pure modules next to this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from types import TracebackType
from typing import Final, Protocol
from urllib.parse import parse_qsl, urlsplit

import grpc
from transcribe.v1 import transcribe_pb2 as pb
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gateway.config import Settings
from gateway.errors import ClientCancelledError, SessionFailedError
from gateway.metrics import Metrics
from gateway.protocol.outcome import error_status
from gateway.session import Session, SessionOptions
from gateway.web import routes
from gateway.web.auth import Authenticator, Scheme, origin_allowed, parse_credential, subprotocols
from gateway.web.messages import (
    CloseStream,
    HttpError,
    StreamView,
    close_for,
    encode,
    http_error_for,
    parse_client_text,
    translate,
)
from gateway.web.query import QueryError, parse_query
from gateway.web.tokens import MAX_TTL_S, TokenSigner, derive_secret

logger = logging.getLogger(__name__)

_STATIC: Final = "static"
# Headers a browser page on an allowed origin may read from a refused handshake's response.
_EXPOSED_HEADERS: Final = "dg-request-id, dg-error"


class Availability(Protocol):
    @property
    def draining(self) -> bool: ...


class SessionRegistry(Protocol):
    """Where open sessions are counted and found by a drain (the gRPC servicer)."""

    sessions: set[Session]
    idle: asyncio.Event


@dataclass(frozen=True, slots=True)
class WebOptions:
    host: str
    port: int
    allowed_origins: frozenset[str]
    token_ttl_s: int
    max_message_bytes: int
    max_streams: int
    # How long a handshake waits for the upstream to accept before answering 101 anyway.
    handshake_wait_s: float = 5.0


SECRET_ENV: Final = "GATEWAY_WEB_TOKEN_SECRET"


def web_listener(
    settings: Settings,
    *,
    session_options: SessionOptions,
    metrics: Metrics,
    availability: Availability,
    registry: SessionRegistry,
    environ: Mapping[str, str],
) -> WebListener:
    """The listener ``settings.http_listen`` asks for.

    The signing secret is read from the environment only (never a flag, which a process list
    shows), and the worker processes of ``--workers N`` inherit it.
    """
    assert settings.http_listen is not None
    host, _, port = settings.http_listen.rpartition(":")
    tokens = settings.client_tokens
    signer = TokenSigner(derive_secret(environ.get(SECRET_ENV), tokens))
    return WebListener(
        options=WebOptions(
            host=host.strip("[]"),
            port=int(port),
            allowed_origins=settings.web_allowed_origins,
            token_ttl_s=settings.web_token_ttl_s,
            max_message_bytes=settings.max_message_bytes,
            max_streams=settings.max_streams,
        ),
        session_options=session_options,
        metrics=metrics,
        availability=availability,
        registry=registry,
        authenticator=Authenticator(tokens, signer),
    )


class WebListener:
    """``async with WebListener(...) as web:`` serves until the context exits."""

    def __init__(
        self,
        options: WebOptions,
        *,
        session_options: SessionOptions,
        metrics: Metrics,
        availability: Availability,
        registry: SessionRegistry,
        authenticator: Authenticator,
    ) -> None:
        self._options = options
        self._session_options = session_options
        self._metrics = metrics
        self._availability = availability
        self._registry = registry
        self._auth = authenticator
        self._files = _load_static()
        self._server: Server | None = None
        self._streams: dict[ServerConnection, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The handshake's own wait, plus time to send the 101 and start the handler.
        self._open_timeout = options.handshake_wait_s + 5.0
        self.port = 0

    async def __aenter__(self) -> WebListener:
        options = self._options
        self._server = await serve(
            self._handle,
            options.host,
            options.port,
            process_request=self._process_request,
            process_response=self._process_response,
            select_subprotocol=_select_subprotocol,
            server_header=None,
            max_size=options.max_message_bytes,
            open_timeout=self._open_timeout,
            # As gRPC does, so that --workers N processes share the port.
            reuse_port=True,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    @property
    def host(self) -> str:
        return self._options.host

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close(close_connections=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    # --- HTTP ------------------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        request_id = str(uuid.uuid4())
        target = urlsplit(request.path)
        found = routes.route(request.method, target.path, self._files)
        if found.kind is routes.Kind.LISTEN:
            return await self._open_stream(connection, request, target.query, request_id)
        if found.kind is routes.Kind.FILE:
            return self._file(connection, found.file, head=request.method == "HEAD")
        if found.kind is routes.Kind.GRANT:
            return self._grant(connection, request, target.query, request_id)
        if found.kind is routes.Kind.PREFLIGHT:
            return self._preflight(connection, request)
        if found.kind is routes.Kind.METHOD_NOT_ALLOWED:
            response = _error(
                connection, HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed"), request_id
            )
            response.headers["Allow"] = found.allow
            return response
        return _error(connection, HttpError(HTTPStatus.NOT_FOUND, f"no such path: {target.path}"), request_id)

    def _file(self, connection: ServerConnection, name: str, *, head: bool) -> Response:
        body = self._files[name]
        response = connection.respond(HTTPStatus.OK, "")
        headers = _without(response.headers, "Content-Type", "Content-Length")
        headers["Content-Type"] = routes.content_type(name)
        headers["Content-Length"] = str(len(body))
        headers["Cache-Control"] = "no-cache"
        headers["X-Content-Type-Options"] = "nosniff"
        return Response(response.status_code, response.reason_phrase, headers, b"" if head else body)

    def _grant(self, connection: ServerConnection, request: Request, query: str, request_id: str) -> Response:
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.headers.get("Host"), self._options.allowed_origins):
            return _error(connection, HttpError(HTTPStatus.FORBIDDEN, "origin not allowed"), request_id)
        credential = parse_credential(request.headers.get("Authorization"), ())
        if not self._auth.is_client_token(credential):
            return self._cors(
                _error(connection, HttpError(HTTPStatus.UNAUTHORIZED, "Invalid credentials."), request_id),
                origin,
            )
        ttl = self._options.token_ttl_s
        asked = dict(parse_qsl(query)).get("ttl_seconds")
        if asked is not None:
            if not asked.isdigit() or not 1 <= int(asked) <= MAX_TTL_S:
                return self._cors(
                    _error(
                        connection,
                        HttpError(HTTPStatus.BAD_REQUEST, f"ttl_seconds must be 1 to {MAX_TTL_S}"),
                        request_id,
                    ),
                    origin,
                )
            ttl = int(asked)
        token = self._auth.signer.mint(time.time(), ttl)
        body = encode({"access_token": token, "expires_in": ttl})
        response = connection.respond(HTTPStatus.OK, body)
        headers = _without(response.headers, "Content-Type")
        headers["Content-Type"] = "application/json"
        headers["Cache-Control"] = "no-store"
        headers["dg-request-id"] = request_id
        return self._cors(
            Response(response.status_code, response.reason_phrase, headers, response.body), origin
        )

    def _preflight(self, connection: ServerConnection, request: Request) -> Response:
        origin = request.headers.get("Origin")
        response = connection.respond(HTTPStatus.NO_CONTENT, "")
        if origin is not None and origin_allowed(origin, None, self._options.allowed_origins):
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Authorization"
            response.headers["Access-Control-Max-Age"] = "600"
        return self._cors(response, origin)

    def _cors(self, response: Response, origin: str | None) -> Response:
        if origin is not None and origin_allowed(origin, None, self._options.allowed_origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
            response.headers["Vary"] = "Origin"
        return response

    # --- the websocket ---------------------------------------------------------------------

    async def _open_stream(
        self, connection: ServerConnection, request: Request, query: str, request_id: str
    ) -> Response | None:
        headers = request.headers
        if not origin_allowed(headers.get("Origin"), headers.get("Host"), self._options.allowed_origins):
            return _error(connection, HttpError(HTTPStatus.FORBIDDEN, "origin not allowed"), request_id)
        credential = parse_credential(
            headers.get("Authorization"), subprotocols(headers.get_all("Sec-WebSocket-Protocol"))
        )
        if not self._auth.may_stream(credential, time.time()):
            return _error(connection, HttpError(HTTPStatus.UNAUTHORIZED, "Invalid credentials."), request_id)
        try:
            listen = parse_query(query)
        except QueryError as exc:
            return _error(connection, HttpError(HTTPStatus.BAD_REQUEST, str(exc)), request_id)
        if self._availability.draining:
            return _error(
                connection,
                HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "the gateway is shutting down; retry elsewhere"),
                request_id,
            )
        registry = self._registry
        if len(registry.sessions) >= self._options.max_streams:
            return _error(
                connection,
                HttpError(
                    HTTPStatus.TOO_MANY_REQUESTS,
                    f"the gateway is at its limit of {self._options.max_streams} concurrent streams",
                ),
                request_id,
            )
        session = Session(listen.config, self._session_options, self._metrics)
        config = listen.config
        stream = _Stream(
            session,
            StreamView(
                request_id=str(uuid.UUID(hex=session.id)),
                created=_rfc3339(datetime.now(UTC)),
                channels=(config.channels or 1) if config.encoding else 1,
                gateway_events=listen.gateway_events,
            ),
        )
        # Registered before the first await, so that concurrent handshakes respect the cap.
        registry.sessions.add(session)
        registry.idle.clear()
        self._metrics.active_sessions.inc()
        task = asyncio.create_task(self._drive(stream), name=f"web-session-{session.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.wait(
            (stream.answered, task),
            timeout=self._options.handshake_wait_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if stream.answered.done():
            failure = stream.answered.result()
            if failure is not None:
                return _error(connection, http_error_for(failure.cause), stream.view.request_id)
        elif task.done():
            return _error(
                connection, HttpError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal gateway error"), request_id
            )
        else:
            # The upstream is slow to answer: open now, report a later failure as a close code.
            stream.answered.set_result(None)
        self._streams[connection] = stream
        return None

    def _process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        stream = self._streams.get(connection)
        if stream is None:
            return
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            # The upgrade failed after all (not a websocket request, server closing): no handler.
            del self._streams[connection]
            stream.abandon()
            return
        response.headers["dg-request-id"] = stream.view.request_id

    async def _handle(self, connection: ServerConnection) -> None:
        stream = self._streams.pop(connection, None)
        if stream is None:
            await connection.close(1011, "no stream for this connection")
            return
        stream.socket.set_result(connection)
        await stream.done.wait()

    async def _drive(self, stream: _Stream) -> None:
        """Run one stream's session, from the handshake to the close."""
        session = stream.session
        code = grpc.StatusCode.OK

        async def write(response: pb.StreamTranscribeResponse) -> None:
            if not stream.answered.done():
                stream.answered.set_result(None)
            message = translate(response, stream.view)
            if message is not None:
                socket = await self._socket(stream)
                await socket.send(encode(message))

        try:
            await session.run(self._requests(stream), write)
            socket = await self._socket(stream)
            await socket.close(1000)
        except SessionFailedError as exc:
            if isinstance(exc.cause, ClientCancelledError):
                code = grpc.StatusCode.CANCELLED
                return
            code = error_status(exc.cause).code
            if not stream.answered.done():
                stream.answered.set_result(exc)
                return
            session.log.info("web stream ended: %s: %s", code.name, exc)
            socket = await self._socket(stream)
            await socket.close(*close_for(exc.cause))
        except (ConnectionClosed, _AbandonedError):
            code = grpc.StatusCode.CANCELLED
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            if not stream.answered.done():
                stream.answered.set_result(None)
            stream.done.set()
            registry = self._registry
            registry.sessions.discard(session)
            if not registry.sessions:
                registry.idle.set()
            self._metrics.active_sessions.dec()
            self._metrics.sessions.labels(code.name).inc()

    async def _socket(self, stream: _Stream) -> ServerConnection:
        """The stream's websocket, once its handshake completed."""
        try:
            async with asyncio.timeout(self._open_timeout):
                # Shielded: a cancelled waiter must not cancel the future the handler will set.
                return await asyncio.shield(stream.socket)
        except TimeoutError:
            raise _AbandonedError from None

    async def _requests(self, stream: _Stream) -> AsyncIterator[pb.StreamTranscribeRequest]:
        """The client's frames as session requests; CloseStream ends them (the half-close)."""
        try:
            socket = await self._socket(stream)
        except _AbandonedError:
            raise ClientCancelledError("the websocket handshake did not complete") from None
        with contextlib.suppress(ConnectionClosed):
            async for frame in socket:
                if isinstance(frame, bytes):
                    if not frame:
                        return  # the legacy end of stream: an empty binary frame
                    yield pb.StreamTranscribeRequest(audio=frame)
                    continue
                control = parse_client_text(frame)
                if isinstance(control, CloseStream):
                    return
                if control is not None:
                    yield pb.StreamTranscribeRequest(control=control)
        raise ClientCancelledError("the client closed the websocket without CloseStream")


class _AbandonedError(Exception):
    """The upgrade never completed: there is no socket to talk to."""


class _Stream:
    """One ``/v1/listen`` stream from its handshake to its close."""

    def __init__(self, session: Session, view: StreamView) -> None:
        loop = asyncio.get_running_loop()
        self.session = session
        self.view = view
        self.socket: asyncio.Future[ServerConnection] = loop.create_future()
        # The session's first answer: None when it started (or the handshake stopped waiting),
        # the failure when it failed before answering anything.
        self.answered: asyncio.Future[SessionFailedError | None] = loop.create_future()
        self.done = asyncio.Event()

    def abandon(self) -> None:
        if not self.socket.done():
            self.socket.set_exception(_AbandonedError())
            self.socket.exception()  # retrieved: a stream that never starts waits on nothing


def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Echo the credential's scheme (``token`` or ``bearer``), as Deepgram does; browsers fail a
    socket whose answer names none of the offered subprotocols."""
    for name in offered:
        if name.lower() in Scheme.__members__.values():
            return name
    return None


def _error(connection: ServerConnection, error: HttpError, request_id: str) -> Response:
    response = connection.respond(error.status, error.body(request_id))
    headers = _without(response.headers, "Content-Type")
    headers["Content-Type"] = "application/json"
    headers["dg-request-id"] = request_id
    headers["dg-error"] = error.message.encode("ascii", "replace").decode()
    return Response(response.status_code, response.reason_phrase, headers, response.body)


def _without(headers: Headers, *names: str) -> Headers:
    drop = {name.lower() for name in names}
    return Headers((name, value) for name, value in headers.raw_items() if name.lower() not in drop)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _load_static() -> Mapping[str, bytes]:
    """The page's files, read once: only these names are ever served."""
    folder = resources.files("gateway.web") / _STATIC
    return {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and not entry.name.startswith(".")
    }
