"""A scripted Deepgram ``/v1/listen`` stand-in: a real websocket server on loopback.

It records what each connection receives (path, query, headers, every frame) and answers
according to a per-connection :class:`Plan`: refuse the handshake with an HTTP status, send
scripted messages, transcribe "counter audio", close with a code, drop the TCP connection, or
stall.

Counter audio makes transcripts checkable across reconnects: the client sends 16-bit PCM in
blocks of ``BLOCK_SECONDS`` whose samples all hold the block's number; the stand-in answers each
block with the word ``w<number>``, timed from the start of *its own* connection, as Deepgram
does. A gap or a repeated word in what the gateway delivers is then visible and exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

SAMPLE_RATE = 16_000
BLOCK_SECONDS = 0.08  # divides the gateway's replay alignment (0.16 s)
BLOCK_BYTES = int(SAMPLE_RATE * BLOCK_SECONDS) * 2
NET0001 = (
    "Deepgram did not receive audio data or a text message within the timeout window. "
    "See https://dpgr.am/net0001"
)


def counter_audio(first_block: int, blocks: int) -> bytes:
    """``blocks`` blocks of counter audio numbered from ``first_block``."""
    samples = BLOCK_BYTES // 2
    return b"".join(struct.pack("<h", n) * samples for n in range(first_block, first_block + blocks))


@dataclass
class Plan:
    """How the stand-in treats one connection."""

    reject_status: int | None = None
    reject_body: str = '{"err_code":"Bad Request","err_msg":"No such model/language/tier combination found."}'
    # Messages sent as soon as the connection opens (e.g. recorded fixtures).
    on_open: list[str] = field(default_factory=list)
    # Messages sent, in order, after CloseStream and before Metadata.
    on_close_stream: list[str] = field(default_factory=list)
    # Answer counter audio with words.
    transcribe: bool = True
    # Final result every this many blocks.
    blocks_per_result: int = 5
    # Fault injection at a position of the audio this connection received, in blocks of counter
    # audio (BLOCK_BYTES each): the fault fires on the first audio byte past that many blocks,
    # whatever websocket messages carried them. Deepgram has no notion of audio message
    # boundaries, so neither do the faults: a gateway sending one block per message, or several
    # waiting blocks as one, meets each fault at the same audio, and the audio before it is
    # transcribed either way. 0: on the first audio.
    # Close with close_code and close_reason:
    close_after_blocks: int | None = None
    close_code: int = 1011
    close_reason: str = (
        "Deepgram did not provide a response message within the timeout window. See https://dpgr.am/net0000"
    )
    # Drop the TCP connection (the gateway sees 1006):
    drop_after_blocks: int | None = None
    # Read nothing more and never answer (an upstream that hangs):
    stall_after_blocks: int | None = None
    # Wait this long after CloseStream before the last results (a slow flush).
    close_stream_delay_s: float = 0.0
    # Close 1011 NET-0001 after this long without any frame.
    idle_timeout_s: float | None = None
    # Faults tied to the audio rather than to the connection, so that every connection (each
    # replaying from the cursor) fails at the same point of the stream: on receiving the
    # counter block numbered ``fail_at_block``, close with ``close_code``, or send one text frame
    # of ``huge_frame_bytes`` (over the gateway's 16 MiB frame limit) instead when set.
    fail_at_block: int | None = None
    huge_frame_bytes: int | None = None
    # Fields merged into every Results message (e.g. {"duration": "inf"}): hostile values.
    result_overrides: dict[str, Any] = field(default_factory=dict)
    # After CloseStream, keep the connection open and send this text every interval, forever,
    # never closing (an upstream whose flush never ends). None: flush and close normally.
    endless_flush_message: str | None = None
    endless_flush_interval_s: float = 0.05


@dataclass
class Recorded:
    """What one connection received."""

    request_id: str
    path: str = ""
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: Headers = field(default_factory=Headers)
    frames: list[bytes | str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None

    @property
    def audio(self) -> bytes:
        return b"".join(f for f in self.frames if isinstance(f, bytes))

    @property
    def texts(self) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.frames if isinstance(f, str)]


class DeepgramStandIn:
    """``async with DeepgramStandIn(plans) as standin:`` then point the gateway at ``standin.url``."""

    def __init__(self, plans: list[Plan] | None = None, default: Plan | None = None) -> None:
        self._plans = list(plans or [])
        self._default = default or Plan()
        self.connections: list[Recorded] = []
        self.handshakes = 0
        self._server: Server | None = None
        self.connected = asyncio.Event()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1/listen"

    def plan(self, index: int) -> Plan:
        return self._plans[index] if index < len(self._plans) else self._default

    async def __aenter__(self) -> DeepgramStandIn:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            process_response=self._process_response,
            compression=None,
            # Never stop reading: a fault that closes while frames are still queued must not
            # wait for the closing handshake behind them (reading paused, 10 s close timeout).
            max_queue=None,
            # Its own logger, so tests that inspect the gateway's logs can tell them apart.
            logger=logging.getLogger("tests.standin"),
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        index = self.handshakes
        self.handshakes += 1
        plan = self.plan(index)
        request_id = str(uuid.uuid4())
        parts = urlsplit(request.path)
        record = Recorded(
            request_id=request_id,
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers=request.headers,
        )
        self.connections.append(record)
        connection.standin_record = record  # type: ignore[attr-defined]
        connection.standin_plan = plan  # type: ignore[attr-defined]
        if plan.reject_status is not None:
            response = connection.respond(plan.reject_status, plan.reject_body)
            response.headers["dg-request-id"] = request_id
            response.headers["dg-error"] = plan.reject_body
            record.closed.set()
            return response
        return None

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response:
        record: Recorded = connection.standin_record  # type: ignore[attr-defined]
        if "dg-request-id" not in response.headers:
            response.headers["dg-request-id"] = record.request_id
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        record: Recorded = ws.standin_record  # type: ignore[attr-defined]
        plan: Plan = ws.standin_plan  # type: ignore[attr-defined]
        self.connected.set()
        try:
            await _Conversation(ws, record, plan).run()
        except ConnectionClosed:
            pass
        finally:
            record.close_code = ws.close_code
            record.closed.set()


class _Conversation:
    def __init__(self, ws: ServerConnection, record: Recorded, plan: Plan) -> None:
        self.ws = ws
        self.record = record
        self.plan = plan
        self.pending = bytearray()
        self.block = 0  # blocks transcribed on this connection
        self.unreported: list[tuple[int, int]] = []  # (block index on this connection, value)
        self.audio_bytes = 0  # audio received on this connection
        self.received_seconds = 0.0

    async def run(self) -> None:
        for message in self.plan.on_open:
            await self.ws.send(message)
        while True:
            try:
                frame = await asyncio.wait_for(self.ws.recv(), self.plan.idle_timeout_s)
            except TimeoutError:
                await self.ws.send(self._metadata())
                await self.ws.close(1011, NET0001)
                return
            self.record.frames.append(frame)
            if isinstance(frame, bytes):
                start = self.audio_bytes
                self.audio_bytes += len(frame)
                fault = self._first_fault(start, frame)
                # The audio before a fault is answered as if it had come in a message of its own.
                audio = frame if fault is None else frame[: fault[0] - start]
                self.received_seconds += len(audio) / (SAMPLE_RATE * 2)
                if self.plan.transcribe:
                    self.pending += audio
                    await self._transcribe(finalize=False)
                if fault is not None:
                    await self._fail(fault[1])
                    return
                continue
            kind = json.loads(frame).get("type")
            if kind == "Finalize":
                await self._transcribe(finalize=True)
            elif kind == "CloseStream":
                if self.plan.endless_flush_message is not None:
                    while True:
                        await self.ws.send(self.plan.endless_flush_message)
                        await asyncio.sleep(self.plan.endless_flush_interval_s)
                await asyncio.sleep(self.plan.close_stream_delay_s)
                await self._transcribe(finalize=True, from_finalize=False)
                for message in self.plan.on_close_stream:
                    await self.ws.send(message)
                await self.ws.send(self._metadata())
                await self.ws.close(1000)
                return

    def _first_fault(self, start: int, frame: bytes) -> tuple[int, str] | None:
        """The earliest fault within audio bytes [start, start + len(frame)) of this connection:
        (its byte position, its kind), or None."""
        plan, end = self.plan, start + len(frame)
        faults: list[tuple[int, str]] = []
        # In order of precedence when two fall on the same byte.
        for kind, blocks in (
            ("drop", plan.drop_after_blocks),
            ("close", plan.close_after_blocks),
            ("stall", plan.stall_after_blocks),
        ):
            if blocks is not None and end > blocks * BLOCK_BYTES:
                faults.append((max(start, blocks * BLOCK_BYTES), kind))
        if plan.fail_at_block is not None:
            # Block boundaries of this connection's audio (which starts on one: replays are aligned).
            first = start + -start % BLOCK_BYTES
            for position in range(first, end - 1, BLOCK_BYTES):
                if struct.unpack_from("<h", frame, position - start)[0] == plan.fail_at_block:
                    faults.append((position, "block"))
                    break
        return min(faults, key=lambda fault: fault[0]) if faults else None

    async def _fail(self, kind: str) -> None:
        plan = self.plan
        if kind == "drop":
            self.ws.transport.abort()
        elif kind == "stall":
            # Keep the socket open and read nothing more, until the peer gives up: an upstream that hangs.
            await self.ws.wait_closed()
        elif kind == "block" and plan.huge_frame_bytes is not None:
            await self.ws.send("x" * plan.huge_frame_bytes)
            await self.ws.wait_closed()
        else:
            await self.ws.close(plan.close_code, plan.close_reason)

    async def _transcribe(self, *, finalize: bool, from_finalize: bool = True) -> None:
        while len(self.pending) >= BLOCK_BYTES:
            (value,) = struct.unpack_from("<h", self.pending)
            del self.pending[:BLOCK_BYTES]
            self.unreported.append((self.block, value))
            self.block += 1
            if len(self.unreported) >= self.plan.blocks_per_result:
                await self.ws.send(self._result(from_finalize=False))
        if finalize and self.unreported:
            await self.ws.send(self._result(from_finalize=from_finalize))

    def _result(self, *, from_finalize: bool) -> str:
        words = [
            {
                "word": f"w{value}",
                "start": round(index * BLOCK_SECONDS, 6),
                "end": round((index + 1) * BLOCK_SECONDS, 6),
                "confidence": 0.99,
                "punctuated_word": f"W{value}",
            }
            for index, value in self.unreported
        ]
        start = self.unreported[0][0] * BLOCK_SECONDS
        self.unreported = []
        message: dict[str, Any] = {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(words[-1]["end"] - start, 6),  # type: ignore[operator]
            "start": round(start, 6),
            "is_final": True,
            "speech_final": True,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": " ".join(str(w["punctuated_word"]) for w in words),
                        "confidence": 0.99,
                        "words": words,
                    }
                ]
            },
            "metadata": {
                "request_id": self.record.request_id,
                "model_info": {"name": "standin", "version": "1", "arch": "counter"},
                "model_uuid": "00000000-0000-0000-0000-000000000000",
            },
        }
        message.update(self.plan.result_overrides)
        return json.dumps(message)

    def _metadata(self) -> str:
        return json.dumps(
            {
                "type": "Metadata",
                "transaction_key": "deprecated",
                "request_id": self.record.request_id,
                "sha256": "incomplete",
                "created": "2026-11-25T00:00:00.000Z",
                "duration": round(self.received_seconds, 6),
                "channels": 1,
            }
        )


async def wait_closed(record: Recorded, limit_s: float = 10.0) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(record.closed.wait(), limit_s)
