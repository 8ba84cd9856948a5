"""Per-operation timings behind the levers in docs/benchmarks.md's notes.

    PYTHONPATH=. .venv/bin/python docs/benchmarks/levers.py

Each line is the CPU time of one operation of the gateway's hot path (this commit's code), next
to what the plain relay (bench/plain_relay.py) does instead, median of 5 repetitions. It imports
the gateway's internals as they are at the commit the notes name, so it may need adjusting
after the relay core is rewritten; it is a record of how the notes' figures were found, not
part of the test suite.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable

import uvloop
from transcribe.v1 import transcribe_pb2 as pb

from bench import plain_relay
from gateway.metrics import Metrics
from gateway.protocol import deepgram
from gateway.protocol.timeline import Timeline

REPEATS = 5


def deepgram_result(words: int, final: bool) -> str:
    """A Results message as bench/upstream's deepgram profile writes it."""
    filler = ["the", "weather", "today", "is", "mostly", "sunny", "with", "a", "light", "breeze"]
    names = ["f1234", *(filler[i % len(filler)] for i in range(1, words))]
    step = 3.0 / words
    return json.dumps(
        {
            "type": "Results",
            "channel_index": [0, 1],
            "start": 12.0,
            "duration": 3.0,
            "is_final": final,
            "speech_final": final,
            "from_finalize": False,
            "channel": {
                "alternatives": [
                    {
                        "transcript": " ".join(names),
                        "confidence": 0.97,
                        "words": [
                            {
                                "word": w,
                                "start": 12.0 + i * step,
                                "end": 12.0 + i * step + 0.8 * step,
                                "confidence": 0.97,
                                "punctuated_word": w,
                            }
                            for i, w in enumerate(names)
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": "0123456789abcdef0123456789abcdef",
                "model_info": {"name": "bench", "version": "1", "arch": "none"},
                "model_uuid": "bench-upstream",
            },
        },
        separators=(",", ":"),
    )


def per_call_us(fn: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(REPEATS):
        began = time.process_time()
        for _ in range(n):
            fn()
        samples.append((time.process_time() - began) / n * 1e6)
    return statistics.median(samples)


def result_path() -> list[tuple[str, float]]:
    text = deepgram_result(8, final=False)
    timeline = Timeline(1)

    def gateway() -> bytes:
        parsed = deepgram.parse_message(text)
        assert isinstance(parsed, pb.Result)
        result = timeline.result(parsed)
        return pb.StreamTranscribeResponse(result=result).SerializeToString()

    def plain() -> bytes:
        return pb.StreamTranscribeResponse(result=plain_relay._result(json.loads(text))).SerializeToString()

    parsed = deepgram.parse_message(text)
    assert isinstance(parsed, pb.Result)
    return [
        ("result, 8 words: gateway parse + timeline + response + serialize", per_call_us(gateway, 5000)),
        ("result, 8 words: plain relay json + build + serialize", per_call_us(plain, 5000)),
        (
            "  of which gateway deepgram.parse_message",
            per_call_us(lambda: deepgram.parse_message(text), 5000),
        ),
        ("  of which gateway Timeline.result", per_call_us(lambda: timeline.result(parsed), 5000)),
        (
            "  of which gateway StreamTranscribeResponse(result=...) (a copy)",
            per_call_us(lambda: pb.StreamTranscribeResponse(result=parsed), 5000),
        ),
    ]


def per_frame_python() -> list[tuple[str, float]]:
    metrics = Metrics()
    request = pb.StreamTranscribeRequest(audio=bytes(640))
    received = metrics.grpc_msg_received.labels(
        "bidi_stream", "transcribe.v1.TranscribeService", "StreamTranscribe"
    )
    return [
        (
            "prometheus Counter.inc (one of 3 per frame)",
            per_call_us(lambda: metrics.audio_received.inc(0.02), 200_000),
        ),
        ("labelled Counter.inc (grpc_msg_received, per frame)", per_call_us(received.inc, 200_000)),
        (
            "request.audio read (a 640-byte copy each; read 4 times a frame in _read_client)",
            per_call_us(lambda: request.audio, 200_000),
        ),
        ("time.monotonic (4-5 per frame)", per_call_us(time.monotonic, 200_000)),
    ]


async def hops(n: int) -> list[tuple[str, float]]:
    """Task switches per frame: the reader waking the sender through an Event, and a response
    through a Queue and generator layers, against doing the same work in the caller's task."""

    async def event_hop() -> float:
        event = asyncio.Event()
        done = asyncio.Event()
        count = 0

        async def sender() -> None:
            nonlocal count
            while count < n:
                event.clear()
                await event.wait()
                count += 1
            done.set()

        task = asyncio.create_task(sender())
        began = time.process_time()
        while not done.is_set():
            event.set()
            await asyncio.sleep(0)
        spent = time.process_time() - began
        await task
        return spent / n * 1e6

    async def direct() -> float:
        began = time.process_time()
        for _ in range(n):
            await asyncio.sleep(0)
        return (time.process_time() - began) / n * 1e6

    async def queue_and_generators(layers: int) -> float:
        queue: asyncio.Queue[int | None] = asyncio.Queue(256)

        async def source() -> AsyncIterator[int]:
            while (item := await queue.get()) is not None:
                yield item

        async def layer(inner: AsyncIterator[int]) -> AsyncIterator[int]:
            async for item in inner:
                yield item

        async def producer() -> None:
            for i in range(n):
                await queue.put(i)
                await asyncio.sleep(0)
            await queue.put(None)

        chain: AsyncIterator[int] = source()
        for _ in range(layers - 1):
            chain = layer(chain)
        task = asyncio.create_task(producer())
        began = time.process_time()
        async for _ in chain:
            pass
        spent = time.process_time() - began
        await task
        return spent / n * 1e6

    base = statistics.median([await direct() for _ in range(REPEATS)])
    event = statistics.median([await event_hop() for _ in range(REPEATS)])
    three = statistics.median([await queue_and_generators(3) for _ in range(REPEATS)])
    one = statistics.median([await queue_and_generators(1) for _ in range(REPEATS)])
    return [
        ("Event hop reader -> sender, per frame (over a bare loop turn)", event - base),
        ("response through a Queue and 3 async generators", three),
        ("response through a Queue and 1 async generator", one),
    ]


def main() -> None:
    rows = [*result_path(), *per_frame_python(), *uvloop.run(hops(20_000))]
    print("| Operation | CPU per call (µs) |")
    print("|---|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} |")


if __name__ == "__main__":
    main()
