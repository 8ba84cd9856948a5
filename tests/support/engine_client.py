"""The real engine on a loopback port, and a websocket client that records what it sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import jiwer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.timing import TIMING
from transcribe_engine.config import EngineConfig
from transcribe_engine.server import EngineServer


@contextlib.asynccontextmanager
async def running_engine(**overrides: Any) -> AsyncIterator[EngineServer]:
    # A fixed stream cap skips the start-up calibration, which would cost seconds per test.
    settings: dict[str, Any] = {"max_streams": 4, **overrides}
    async with EngineServer(EngineConfig(**settings)) as server:
        yield server


@dataclass
class Transcript:
    """Everything the engine sent on one socket, and how it closed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool]) -> None:
        """Wait until the messages received so far satisfy ``predicate``."""
        async with asyncio.timeout(READ_LIMIT_S * TIMING):
            while not predicate(self.messages):
                self.changed.clear()
                await self.changed.wait()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def finals(self, channel: int = 0) -> list[dict[str, Any]]:
        return [m for m in self.of_type("Results") if m["is_final"] and m["channel_index"][0] == channel]

    def interims(self) -> list[dict[str, Any]]:
        return [m for m in self.of_type("Results") if not m["is_final"]]

    def text(self, channel: int = 0) -> str:
        parts = [m["channel"]["alternatives"][0]["transcript"] for m in self.finals(channel)]
        return " ".join(p for p in parts if p)


READ_LIMIT_S = 60.0


async def read_all(ws: ClientConnection, transcript: Transcript) -> Transcript:
    """Read until the server closes the socket."""
    async with asyncio.timeout(READ_LIMIT_S * TIMING):
        try:
            async for message in ws:
                assert isinstance(message, str), "the engine must only send text frames"
                transcript.messages.append(json.loads(message))
                transcript.arrival.append(time.monotonic())
                transcript.changed.set()
        except ConnectionClosed:
            pass
    transcript.close_code = ws.close_code
    transcript.close_reason = ws.close_reason or ""
    return transcript


async def send_audio(ws: ClientConnection, chunks: list[bytes], *, pace_s: float = 0.0) -> None:
    """Send chunks back to back, or one per ``pace_s`` seconds to imitate a live source."""
    start = time.monotonic()
    for index, chunk in enumerate(chunks):
        await ws.send(chunk)
        if pace_s:
            delay = start + (index + 1) * pace_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)


async def stream(
    url: str, chunks: list[bytes], *, pace_s: float = 0.0, then: Callable[[], list[str]] | None = None
) -> Transcript:
    """Send audio then CloseStream, collecting every message until the close."""
    async with connect(url) as ws:
        transcript = Transcript()
        reader = asyncio.create_task(read_all(ws, transcript))
        await send_audio(ws, chunks, pace_s=pace_s)
        for text in then() if then else ['{"type": "CloseStream"}']:
            await ws.send(text)
        return await reader


def normalise(text: str) -> str:
    """Lowercase, punctuation stripped (apostrophes inside words kept), single spaces."""
    return " ".join(re.sub(r"[^\w\s']|(?<!\w)'|'(?!\w)", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(hypothesis) or "<empty>"))
