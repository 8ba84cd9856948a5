"""Work stops when the client is gone, and its admission goes to the next client."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.conftest import TIMING
from tests.engine.conftest import running_engine

pytestmark = pytest.mark.engine

HELLO = Path(__file__).resolve().parents[2] / "gateway" / "samples" / "hello.wav"
RAW = "?encoding=linear16&sample_rate=16000"


def speech(repeats: int) -> bytes:
    with wave.open(str(HELLO)) as clip:
        frames: bytes = clip.readframes(clip.getnframes())
    return frames * repeats


@pytest.mark.parametrize("close_stream_first", [True, False])
async def test_a_gone_client_frees_its_decodes_and_its_slot(close_stream_first: bool) -> None:
    """40 s of speech sent unpaced takes seconds of decoding to flush. A client that leaves
    (after CloseStream, or without it) frees its admission at once: the next stream is admitted
    instead of getting 429, and the decodes the first one would still need are not done."""
    audio = speech(4)
    async with running_engine(max_streams=1) as engine:
        async with connect(engine.url + RAW) as ws:
            for start in range(0, len(audio), 32000):
                await ws.send(audio[start : start + 32000])
            if close_stream_first:
                await ws.send('{"type": "CloseStream"}')
        left = time.monotonic()
        decodes_when_leaving = engine.decodes
        async with asyncio.timeout(30 * TIMING):
            await engine.wait_idle()
        freed_after = time.monotonic() - left
        decodes_after_leaving = engine.decodes - decodes_when_leaving
        async with connect(engine.url + RAW) as second:
            await second.send('{"type": "CloseStream"}')
            await second.wait_closed()
    # Two workers may each finish the decode they had started; nothing after that.
    assert decodes_after_leaving <= 2, f"{decodes_after_leaving} decodes ran for a client that had left"
    assert freed_after < 1.5 * TIMING
