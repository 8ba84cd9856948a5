"""A live gateway with its web front door on loopback, in front of the embedded engine."""

from __future__ import annotations

import contextlib
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.config import Settings
from gateway.server import GatewayServer

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "gateway" / "samples" / "hello.wav"
SAMPLE_TEXT = (
    "hello and welcome to the transcription gateway this short recording was made for the demo "
    "so that anyone can try the service without a network connection"
)
SAMPLE_WORDS = SAMPLE_TEXT.split(" ")
CLIENT_TOKEN = "web-test-client-token-5f3a"


def sample_pcm() -> bytes:
    with wave.open(str(SAMPLE), "rb") as clip:
        assert (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) == (16000, 1, 2)
        return clip.readframes(clip.getnframes())


@contextlib.asynccontextmanager
async def engine_url() -> AsyncIterator[str]:
    """The embedded engine on a loopback port (a fixed stream cap skips its calibration)."""
    from transcribe_engine.config import EngineConfig
    from transcribe_engine.server import EngineServer

    async with EngineServer(EngineConfig(max_streams=4)) as engine:
        yield str(engine.url)


@contextlib.asynccontextmanager
async def web_gateway(upstream_url: str, **settings: Any) -> AsyncIterator[GatewayServer]:
    """A gateway serving gRPC and ``--http-listen`` on free loopback ports."""
    options: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "http_listen": "127.0.0.1:0",
        "upstream_url": upstream_url,
        "retry_initial_backoff_s": 0.05,
        "retry_max_backoff_s": 0.5,
    }
    options.update(settings)
    async with GatewayServer(Settings(**options)) as server:
        yield server


def words_of(text: str) -> list[str]:
    return [w.strip(".,!?;:").lower() for w in text.split() if w.strip(".,!?;:")]
