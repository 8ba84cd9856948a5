"""A hostile client, run as its own process: absurd declared rates and 64 kB bursts, unpaced.

``python -m tests.engine.hostile GATEWAY_ADDRESS ENGINE_URL`` runs until killed. It attacks
through the gateway (gRPC, ``sample_rate=1`` and 192 kHz) and the engine directly (huge rates),
reconnecting whenever it is refused or cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

import grpc
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

BURST = os.urandom(64 * 1024)


async def through_gateway(address: str, rate: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.TranscribeServiceStub(channel)

        async def requests() -> AsyncIterator[pb.StreamTranscribeRequest]:
            yield pb.StreamTranscribeRequest(
                config=pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate)
            )
            while True:
                yield pb.StreamTranscribeRequest(audio=BURST)

        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                async for _ in stub.StreamTranscribe(requests()):
                    pass
            await asyncio.sleep(0.01)


async def at_engine(url: str, rate: int) -> None:
    while True:
        with contextlib.suppress(InvalidStatus, WebSocketException, OSError):
            async with connect(f"{url}?encoding=linear16&sample_rate={rate}", max_size=None) as ws:
                while True:
                    await ws.send(BURST)
        await asyncio.sleep(0.01)


async def main(address: str, url: str) -> None:
    await asyncio.gather(
        through_gateway(address, 1),
        through_gateway(address, 192_000),
        at_engine(url, 1),
        at_engine(url, 10**9),
        at_engine(url, 192_000),
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
