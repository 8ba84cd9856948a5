"""Shared by the fault test and the resilience benchmark: a minute of speech streamed through
the gateway to the embedded engine, optionally behind a proxy that cuts connections."""

from __future__ import annotations

import asyncio
import re
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc

from gateway.config import Settings
from gateway.server import GatewayServer
from tests.support import speech
from tests.support.proxy import CuttingProxy

RATE = 16_000
_CLIPS = (
    "libri_1089-134686-0000.wav",
    "libri_1089-134686-0001.wav",
    "libri_1089-134686-0002.wav",
    "libri_1272-141231-0002.wav",
    "libri_1089-134691-0000.wav",
    "libri_1089-134691-0001.wav",
    "leopard_1272-128104-0000.wav",
    "whisper_jfk.wav",
    "libri_4507-16021-0012.wav",
    "libri_8455-210777-0068.wav",
)


@dataclass(frozen=True)
class Scenario:
    pace: float = 2.0  # times real time
    chunk_s: float = 0.05
    cut_every_s: float = 5.0  # wall-clock seconds between cuts


SPEECH_MINUTE = Scenario()


def speech_minute(corpus: Path | None = None) -> bytes:
    """About a minute of 16 kHz mono speech, clips joined by half a second of silence.

    Without ``corpus``: the project's own clips (tests/data/speech, a little over a minute), so
    the fault test runs anywhere. With it: real human speech from that corpus folder.
    """
    if corpus is None:
        return speech.joined(speech.MINUTE)
    parts: list[bytes] = []
    for name in _CLIPS:
        with wave.open(str(corpus / "audio" / name), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2), name
            parts.append(wav.readframes(wav.getnframes()))
        parts.append(b"\0\0" * (RATE // 2))
    return b"".join(parts)


@dataclass
class Run:
    results: list[pb.Result] = field(default_factory=list)
    events: list[pb.UpstreamEvent] = field(default_factory=list)
    summary: pb.SessionSummary = field(default_factory=pb.SessionSummary)
    cuts: int = 0
    resume_times: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def word_protos(self) -> list[pb.Word]:
        return [w for r in self.results if r.is_final and r.alternatives for w in r.alternatives[0].words]

    @property
    def words(self) -> list[str]:
        return [re.sub(r"[^a-z0-9']", "", w.word.lower()) for w in self.word_protos]

    @property
    def reconnects(self) -> int:
        return sum(1 for e in self.events if e.HasField("reconnected"))


async def run_with_cuts(pcm: bytes, cut_every_s: float | None, scenario: Scenario = SPEECH_MINUTE) -> Run:
    """Stream ``pcm`` through a gateway whose upstream (the embedded engine) sits behind a
    proxy; cut every connection through the proxy every ``cut_every_s`` seconds (None: never)."""
    from transcribe_engine.config import EngineConfig
    from transcribe_engine.server import EngineServer

    run = Run()
    async with EngineServer(EngineConfig()) as engine:
        engine_port = int(engine.url.split(":")[2].split("/")[0])
        async with CuttingProxy(engine_port) as proxy:
            settings = Settings(
                listen="127.0.0.1:0",
                upstream_url=f"ws://127.0.0.1:{proxy.port}/v1/listen",
                retry_initial_backoff_s=0.05,
                retry_max_backoff_s=0.5,
            )
            async with (
                GatewayServer(settings) as server,
                grpc.aio.insecure_channel(server.address) as channel,
            ):
                stub = pb_grpc.TranscribeServiceStub(channel)
                config = pb.StreamingConfig(
                    encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=RATE, punctuate=True
                )
                done = asyncio.Event()
                cutter = asyncio.create_task(_cut_periodically(proxy, cut_every_s, done))
                started = time.monotonic()
                reconnecting_at = 0.0
                try:
                    async for response in stub.StreamTranscribe(_paced(config, pcm, scenario)):
                        kind = response.WhichOneof("response")
                        if kind == "result":
                            run.results.append(response.result)
                        elif kind == "upstream_event":
                            run.events.append(response.upstream_event)
                            if response.upstream_event.HasField("reconnecting"):
                                reconnecting_at = time.monotonic()
                            elif response.upstream_event.HasField("reconnected"):
                                run.resume_times.append(time.monotonic() - reconnecting_at)
                        elif kind == "summary":
                            run.summary = response.summary
                finally:
                    done.set()
                    await cutter
                run.elapsed_s = time.monotonic() - started
                run.cuts = proxy.cuts
    return run


async def _cut_periodically(proxy: CuttingProxy, every_s: float | None, done: asyncio.Event) -> None:
    if every_s is None:
        return
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), every_s)
        except TimeoutError:
            proxy.cut()


async def _paced(
    config: pb.StreamingConfig, pcm: bytes, scenario: Scenario
) -> AsyncIterator[pb.StreamTranscribeRequest]:
    yield pb.StreamTranscribeRequest(config=config)
    chunk = int(RATE * scenario.chunk_s) * 2
    bytes_per_s = RATE * 2 * scenario.pace
    start = time.monotonic()
    for offset in range(0, len(pcm), chunk):
        await asyncio.sleep(max(start + offset / bytes_per_s - time.monotonic(), 0))
        yield pb.StreamTranscribeRequest(audio=pcm[offset : offset + chunk])
