"""``gateway demo``: the whole path on one machine, no key needed.

Starts the gateway with the embedded engine on a free loopback port, streams a WAV file to it
over gRPC at real-time pace, and prints the transcripts as they arrive.
"""

from __future__ import annotations

import asyncio
import sys
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.server import GatewayServer

SAMPLE = Path(__file__).parent / "samples" / "hello.wav"
_CHUNK_S = 0.05


class DemoError(GatewayError):
    """The demo could not run."""


async def run_demo(path: Path | None, *, fast: bool = False) -> None:
    path = path or SAMPLE
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise DemoError(f"{path}: only 16-bit PCM WAV files are supported")
            rate, channels = wav.getframerate(), wav.getnchannels()
            pcm = wav.readframes(wav.getnframes())
    except (OSError, wave.Error) as exc:
        raise DemoError(f"cannot read {path}: {exc}") from exc
    print(
        "demo: starting the gateway with the embedded engine (loading the model)...",
        file=sys.stderr,
    )
    settings = Settings(listen="127.0.0.1:0", deepgram_api_key=None, upstream_url=None)
    async with (
        GatewayServer(settings) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        seconds = len(pcm) / (2 * rate * channels)
        print(f"demo: gateway on {server.address}; streaming {path.name} ({seconds:.1f} s)", file=sys.stderr)
        stub = pb_grpc.TranscribeServiceStub(channel)
        config = pb.StreamingConfig(
            encoding=pb.AUDIO_ENCODING_LINEAR16,
            sample_rate=rate,
            channels=channels,
            interim_results=True,
            punctuate=True,
        )
        started = time.monotonic()
        try:
            async for response in stub.StreamTranscribe(_requests(config, pcm, rate * channels * 2, fast)):
                kind = response.WhichOneof("response")
                if kind == "result" and response.result.is_final:
                    text = response.result.alternatives[0].transcript if response.result.alternatives else ""
                    if text:
                        print(f"[{response.result.start_seconds:6.2f}s] {text}", flush=True)
                elif kind == "summary":
                    summary = response.summary
                    print(
                        f"demo: done in {time.monotonic() - started:.1f} s: "
                        f"{summary.audio_received_seconds:.1f} s of audio, "
                        f"upstream request {', '.join(summary.upstream_request_ids)}",
                        file=sys.stderr,
                    )
        except grpc.aio.AioRpcError as exc:
            raise DemoError(f"{exc.code().name}: {exc.details()}") from exc


async def _requests(
    config: pb.StreamingConfig, pcm: bytes, bytes_per_second: int, fast: bool
) -> AsyncIterator[pb.StreamTranscribeRequest]:
    yield pb.StreamTranscribeRequest(config=config)
    chunk = int(bytes_per_second * _CHUNK_S) // 2 * 2
    start = time.monotonic()
    for offset in range(0, len(pcm), chunk):
        if not fast:
            # Pace by the clock, not by sleeps, so that delays do not accumulate.
            await asyncio.sleep(max(start + offset / bytes_per_second - time.monotonic(), 0))
        yield pb.StreamTranscribeRequest(audio=pcm[offset : offset + chunk])
