"""A live gateway with its web front door on loopback, in front of the embedded engine."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import urllib.request
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


def assert_no_gap(expected: list[str], got: list[str], *, max_edited: int = 4) -> None:
    """``got`` has the words of ``expected``, in order, with no gap and no repeat.

    The recogniser (Whisper tiny.en, hearing the sample through a browser's resampling) may
    mishear a word or two ("memo" for "demo", "with our" for "without a"), so edits of at most
    two words at one place pass, up to ``max_edited`` words in all. A lost stretch of audio (a
    gap) or one transcribed twice (a repeat after a replay) is three or more words dropped or
    added at one place, and never passes.
    """
    matcher = difflib.SequenceMatcher(a=expected, b=got, autojunk=False)
    edited = 0
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            continue
        where = f"{op} at word {a0}: expected {expected[a0:a1]}, got {got[b0:b1]}\n{' '.join(got)}"
        assert a1 - a0 <= 2 and b1 - b0 <= 2, where
        edited += max(a1 - a0, b1 - b0)
    assert edited <= max_edited, f"{edited} words differ: {' '.join(got)}"


def words_of(text: str) -> list[str]:
    return [w.strip(".,!?;:").lower() for w in text.split() if w.strip(".,!?;:")]


async def grant(gateway: GatewayServer, token: str) -> dict[str, Any]:
    """POST /v1/auth/grant with a client token, as a page's backend would."""

    def call() -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{gateway.http_port}/v1/auth/grant",
            method="POST",
            headers={"Authorization": f"Token {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.load(response)
            return result

    return await asyncio.to_thread(call)
