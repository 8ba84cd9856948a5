"""The upstream send path (`UpstreamConnection.send_audio` and its `write_audio`, which skips
websockets' `send()`), over a real socket: frames in order, batches as one message, the close
code after a close, a dropped connection reported, and an upstream that stops reading holding
the sender back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from gateway.errors import UpstreamClosedError
from gateway.upstream.connection import UpstreamConnection, UpstreamTarget, open_upstream
from tests.conftest import TIMING


class Recorder:
    """A websocket server that keeps every message it receives, and can close with a code."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.close_with: int | None = None

    async def handler(self, connection: ServerConnection) -> None:
        async for message in connection:
            await self.messages.put(message)
            if self.close_with is not None:
                await connection.close(self.close_with, "recorder closing")
                return


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, UpstreamConnection]]:
    rec = Recorder()
    async with serve(rec.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        target = UpstreamTarget(f"ws://127.0.0.1:{port}/v1/listen", api_key=None, connect_timeout_s=10.0)
        async with await open_upstream(target) as connection:
            yield rec, connection


async def _next(rec: Recorder) -> str | bytes:
    return await asyncio.wait_for(rec.messages.get(), 5 * TIMING)


async def test_waiting_frames_go_out_as_one_message_in_order(
    recorder: tuple[Recorder, UpstreamConnection],
) -> None:
    rec, connection = recorder
    frames = [bytes([i]) * 640 for i in range(5)]
    await connection.send_audio(frames)
    await connection.send_audio(frames[:1])
    await connection.send_audio([])
    await connection.send_text('{"type":"KeepAlive"}')
    assert await _next(rec) == b"".join(frames)
    assert await _next(rec) == frames[0]
    # No frames sent nothing: the next message is the text one.
    assert await _next(rec) == '{"type":"KeepAlive"}'


async def test_a_batch_sent_after_the_upstream_closed_reports_its_close_code(
    recorder: tuple[Recorder, UpstreamConnection],
) -> None:
    rec, connection = recorder
    rec.close_with = 1008
    await connection.send_audio([b"\0" * 640])
    assert await _next(rec) == b"\0" * 640
    with pytest.raises(UpstreamClosedError) as caught:
        # The close frame may still be in flight: keep sending until the send path sees it.
        async with asyncio.timeout(5 * TIMING):
            while True:
                await connection.send_audio([b"\0" * 640] * 3)
                await asyncio.sleep(0)
    assert caught.value.code == 1008


async def test_frames_written_on_a_dropped_connection_are_reported_by_the_receiver() -> None:
    async def drop(connection: ServerConnection) -> None:
        await connection.recv()
        connection.transport.abort()

    async with serve(drop, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        target = UpstreamTarget(f"ws://127.0.0.1:{port}/v1/listen", api_key=None, connect_timeout_s=10.0)
        async with await open_upstream(target) as connection:
            await connection.send_audio([b"\0" * 640])
            with pytest.raises(UpstreamClosedError) as caught:
                async with asyncio.timeout(5 * TIMING):
                    while True:
                        # Written straight to the transport while it looks open, then refused.
                        if connection.writable:
                            connection.write_audio(b"\0" * 640)
                        await connection.recv()
            assert caught.value.code == 1006


async def test_an_upstream_that_stops_reading_holds_the_sender_back() -> None:
    """The direct write is taken only while nothing is queued in the socket's buffer, so an
    upstream that stops reading fills the kernel's buffers, then websockets' flow control
    holds the sender: what is queued in the gateway stays bounded."""
    stop = asyncio.Event()

    async def never_read(connection: ServerConnection) -> None:
        await stop.wait()

    frame = b"\0" * 65536
    async with serve(never_read, "127.0.0.1", 0, max_queue=1, close_timeout=0.1) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        target = UpstreamTarget(f"ws://127.0.0.1:{port}/v1/listen", api_key=None, connect_timeout_s=10.0)
        async with await open_upstream(target) as connection:
            sent = 0
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2 * TIMING):
                        while sent < 1024 * len(frame):
                            await connection.send_audio([frame])
                            sent += len(frame)
                held_back = not connection.writable
            finally:
                stop.set()
                connection.abort()
            # The kernel's socket buffers on loopback take a few MB; 64 MB would mean the
            # writes were queued in the process without bound.
            assert sent < 64 * 1024 * 1024
            assert held_back
