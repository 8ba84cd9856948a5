"""One websocket connection to a Deepgram-compatible ``/v1/listen`` endpoint.

It turns websockets' exceptions into the gateway's (handshake status and body, close code and
reason, network failure) and makes no decisions: the session and the retry policy do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Close, CloseCode
from websockets.protocol import State

from gateway import __version__
from gateway.errors import (
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamHandshakeError,
    UpstreamOversizeError,
)
from gateway.upstream.framing import AudioFramer

logger = logging.getLogger(__name__)

_USER_AGENT = f"transcribe-gateway/{__version__}"
_REQUEST_ID_HEADERS = ("dg-request-id", "x-dg-request-id")
# How long closing waits for the upstream's close frame before dropping the TCP connection.
_CLOSE_TIMEOUT_S = 2.0
# Deepgram's largest messages are a few kB; anything near this is a broken upstream.
MAX_UPSTREAM_MESSAGE_BYTES: Final = 16 * 1024 * 1024


class _RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """What websockets logs about a connection (handshake headers at DEBUG, among them the
    ``Authorization`` one), with the key replaced wherever it appears."""

    def __init__(self, secret: str) -> None:
        super().__init__(logging.getLogger(f"{__name__}.websocket"), {})
        self._secret = secret

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = (str(msg) % args) if args else str(msg)
            self.logger.log(level, "%s", text.replace(self._secret, "[redacted]"), **kwargs)


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where and how to connect."""

    url: str
    api_key: str | None = field(repr=False)
    connect_timeout_s: float


class UpstreamConnection:
    """An open upstream websocket. Use ``async with await open_upstream(...)``."""

    def __init__(self, websocket: ClientConnection, request_id: str) -> None:
        self._ws = websocket
        # Fixed for the connection's life (it is open): looked up once, not on every frame.
        self._protocol = websocket.protocol
        self._transport = websocket.transport
        self._framer = AudioFramer()
        self.request_id = request_id

    @property
    def writable(self) -> bool:
        """Whether a write now completes without waiting: the connection is open and nothing is
        queued in its socket's buffer (so there is no flow control to wait for)."""
        return self._protocol.state is State.OPEN and not self._transport.get_write_buffer_size()

    def write_audio(self, data: bytes) -> None:
        """Send audio as one binary message without waiting: only while :attr:`writable`.

        This is every frame's path, so it skips websockets' ``send()``: that wraps each call in
        an async context manager (an async generator, registered with the event loop, per
        frame; what skipping it buys is lever 8 in docs/benchmarks.md) to check the state and
        wait for flow control, which :attr:`writable` has done, and to order the parts of
        fragmented messages, which the gateway never sends. The frame is encoded by
        :class:`~gateway.upstream.framing.AudioFramer` (lever 10) and written to the transport,
        between whole frames of websockets' own (controls, pings). A write the socket refuses
        drops the connection: the receiver then reports it, and the audio, still in the replay
        log, is replayed on the next one.
        """
        try:
            self._transport.write(self._framer.frame(data))
        except (OSError, RuntimeError):
            self._transport.abort()

    async def send_audio(self, frames: Sequence[bytes]) -> None:
        """Send audio that is waiting as one binary message, waiting for the upstream's flow
        control if it must (it never waits for more audio: pass what is waiting now; nothing is
        sent for no frames)."""
        if not frames:
            return
        # Deepgram reads the audio as one byte stream whatever the message boundaries, so
        # adjacent frames can share a message: one header, one mask and one socket write.
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.writable:
            self.write_audio(data)
            return
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise await self._closed_while_sending() from exc

    async def send_text(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            raise await self._closed_while_sending() from exc

    async def _closed_while_sending(self) -> UpstreamClosedError | UpstreamOversizeError:
        # A send can fail before the upstream's close frame has been read; the close code
        # decides whether to retry (1008 must not be), so wait for the closing to finish.
        await self._ws.wait_closed()
        protocol = self._ws.protocol
        if (too_big := self._too_big(protocol.close_sent)) is not None:
            return too_big
        return UpstreamClosedError(self._ws.close_code, self._ws.close_reason or "", self.request_id)

    async def recv(self) -> str | bytes:
        """The next message; raises UpstreamClosedError when the connection ends, normally or not."""
        try:
            return await self._ws.recv()
        except ConnectionClosed as exc:
            raise self._closed(exc) from exc

    def _closed(self, exc: ConnectionClosed) -> UpstreamClosedError | UpstreamOversizeError:
        if (too_big := self._too_big(exc.sent)) is not None:
            return too_big
        frame = exc.rcvd
        if frame is None:
            # No close frame from the upstream: the TCP connection dropped (1006).
            return UpstreamClosedError(1006, "connection lost without a close frame", self.request_id)
        return UpstreamClosedError(frame.code, frame.reason, self.request_id)

    def _too_big(self, sent: Close | None) -> UpstreamOversizeError | None:
        """The gateway's own 1009 close, for an upstream message over its size limit.

        The upstream may echo that close or just drop the connection; either way what happened
        is the oversized message, so it is reported as such whatever came back.
        """
        if sent is None or sent.code != CloseCode.MESSAGE_TOO_BIG:
            return None
        return UpstreamOversizeError(MAX_UPSTREAM_MESSAGE_BYTES, self.request_id)

    async def close(self) -> None:
        await self._ws.close()

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake."""
        self._ws.transport.abort()

    async def __aenter__(self) -> UpstreamConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            # The client is gone: tell the upstream at once, don't wait for its answer.
            self.abort()
        else:
            await self.close()


async def open_upstream(target: UpstreamTarget) -> UpstreamConnection:
    """Open one connection; raises UpstreamHandshakeError or UpstreamConnectError."""
    headers = {"Authorization": f"Token {target.api_key}"} if target.api_key else {}
    try:
        websocket = await connect(
            target.url,
            additional_headers=headers,
            user_agent_header=_USER_AGENT,
            open_timeout=target.connect_timeout_s,
            close_timeout=_CLOSE_TIMEOUT_S,
            compression=None,
            max_size=MAX_UPSTREAM_MESSAGE_BYTES,
            logger=_RedactingLogger(target.api_key) if target.api_key else None,
        )
    except InvalidStatus as exc:
        response = exc.response
        request_id = _request_id(response.headers)
        body = (response.body or b"").decode("utf-8", "replace")
        raise UpstreamHandshakeError(response.status_code, body, request_id) from exc
    except InvalidURI as exc:
        raise UpstreamConnectError(f"invalid upstream URL: {exc}") from exc
    except TimeoutError as exc:
        raise UpstreamConnectError(f"handshake timed out after {target.connect_timeout_s:g} s") from exc
    except (OSError, InvalidHandshake) as exc:
        raise UpstreamConnectError(f"{type(exc).__name__}: {exc}") from exc
    assert websocket.response is not None
    return UpstreamConnection(websocket, _request_id(websocket.response.headers) or "")


def _request_id(headers: Headers) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        # A broken proxy may repeat a header; the first value is the upstream's.
        values = headers.get_all(name)
        if values:
            return values[0]
    return None
