"""The official Deepgram Python SDK (deepgram-sdk 7.16, unchanged) works against the engine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from deepgram import AsyncDeepgramClient
from deepgram.core.events import EventType
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results

from tests.conftest import TIMING
from tests.engine.conftest import running_engine, wer
from tests.engine.media import chunks
from tests.support import speech

pytestmark = [
    pytest.mark.engine,
    # The SDK itself imports websockets' deprecated names; that is its business, not ours.
    pytest.mark.filterwarnings("ignore:websockets.exceptions.InvalidStatusCode is deprecated"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated"),
    pytest.mark.filterwarnings("ignore:websockets.client.WebSocketClientProtocol is deprecated"),
]

KEY = "sdk-test-key-77d1"


def environment(url: str) -> DeepgramClientEnvironment:
    """The SDK's environment object pointed at the engine (it appends /v1/listen itself)."""
    base = url.removesuffix("/v1/listen")
    http = base.replace("ws://", "http://", 1)
    return DeepgramClientEnvironment(base=http, production=base, agent=base, agent_rest=http)


async def test_official_sdk_streams_and_receives_transcripts() -> None:
    """AsyncDeepgramClient connects with its key, streams a clip, and parses every message."""
    pcm = speech.WEATHER.pcm()
    received: list[Any] = []
    closed = asyncio.Event()
    async with running_engine(api_key=KEY) as engine:
        client = AsyncDeepgramClient(api_key=KEY, environment=environment(engine.url))
        async with client.listen.v1.connect(
            model="nova-3",
            encoding="linear16",
            sample_rate=16000,
            interim_results="true",
            punctuate="true",
            smart_format="true",
        ) as socket:
            socket.on(EventType.MESSAGE, received.append)
            socket.on(EventType.CLOSE, lambda _: closed.set())
            listener = asyncio.create_task(socket.start_listening())
            for chunk in chunks(pcm, 3200):
                await socket.send_media(chunk)
            await socket.send_close_stream()
            async with asyncio.timeout(60 * TIMING):
                await closed.wait()
                await listener
    results = [m for m in received if isinstance(m, ListenV1Results)]
    finals = [r for r in results if r.is_final]
    assert finals, f"no final results among {received!r}"
    text = " ".join(r.channel.alternatives[0].transcript for r in finals)
    assert wer(speech.WEATHER.text, text) <= 0.25
    assert isinstance(received[-1], ListenV1Metadata)
    words = [w for r in finals for w in r.channel.alternatives[0].words]
    assert all(w.punctuated_word for w in words)
