"""--coalesce-audio-ms over real sockets: held audio leaves as one message when enough waits or
when its first frame has waited that long, never later, and never behind a control; with the
setting off, each frame leaves as it comes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from transcribe.v1 import transcribe_pb2 as pb

from tests.conftest import TIMING
from tests.support.grpc_gateway import LINEAR16, running_gateway, words
from tests.support.standin import BLOCK_BYTES, DeepgramStandIn, Recorded, counter_audio

FRAME = BLOCK_BYTES // 4  # 20 ms of 16 kHz linear16
COALESCE_MS = 100


async def _until(check: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 (the stand-in's record has no event to wait on)
            await asyncio.sleep(0.005)


def _binary(record: Recorded) -> list[bytes]:
    return [f for f in record.frames if isinstance(f, bytes)]


def _messages(standin: DeepgramStandIn) -> int:
    """Audio messages the stand-in's first connection has received."""
    return len(_binary(standin.connections[0])) if standin.connections else 0


async def test_held_audio_leaves_by_its_deadline_at_its_size_and_before_a_finalize() -> None:
    audio = counter_audio(0, 3)  # 12 frames
    frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
    step = asyncio.Event()
    held_for: list[float] = []

    async with DeepgramStandIn() as standin:
        async with running_gateway(standin.url, coalesce_audio_ms=COALESCE_MS) as gw:

            async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
                yield pb.StreamTranscribeRequest(config=LINEAR16)
                # Two frames, then nothing: they must leave together when the first has waited
                # 100 ms, without more input to push them.
                sent_at = time.monotonic()
                for frame in frames[:2]:
                    yield pb.StreamTranscribeRequest(audio=frame)
                await _until(lambda: _messages(standin) == 1, 5 * TIMING)
                held_for.append(time.monotonic() - sent_at)
                # Five frames at once: 100 ms waits, so they leave as one message at once.
                for frame in frames[2:7]:
                    yield pb.StreamTranscribeRequest(audio=frame)
                await _until(lambda: _messages(standin) == 2, 5 * TIMING)
                # One frame and a Finalize: the frame is not held behind it.
                yield pb.StreamTranscribeRequest(audio=frames[7])
                yield pb.StreamTranscribeRequest(control=pb.Control(finalize=pb.Finalize()))
                await step.wait()
                for frame in frames[8:]:
                    yield pb.StreamTranscribeRequest(audio=frame)

            call = gw.stub.StreamTranscribe(reqs())
            responses: list[pb.StreamTranscribeResponse] = []
            async for response in call:
                responses.append(response)
                if response.HasField("result") and response.result.from_finalize:
                    step.set()
    record = standin.connections[0]
    binary = _binary(record)
    assert [len(m) // FRAME for m in binary[:3]] == [2, 5, 1], [len(m) for m in binary]
    assert record.frames[3] == '{"type":"Finalize"}', record.frames[:5]
    # The last four frames: held, then sent before CloseStream when the input ended.
    assert b"".join(binary) == audio
    assert record.texts[-1] == {"type": "CloseStream"}
    assert COALESCE_MS / 1000 <= held_for[0] < COALESCE_MS / 1000 + 2 * TIMING, held_for
    assert [w.word for w in words(responses)] == ["w0", "w1", "w2"]


async def test_without_the_setting_each_frame_leaves_as_it_comes() -> None:
    audio = counter_audio(0, 2)
    frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
    async with DeepgramStandIn() as standin:
        async with running_gateway(standin.url) as gw:

            async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
                yield pb.StreamTranscribeRequest(config=LINEAR16)
                for k, frame in enumerate(frames, 1):
                    yield pb.StreamTranscribeRequest(audio=frame)
                    await _until(lambda: _messages(standin) == k, 5 * TIMING)  # noqa: B023 (awaited here)

            responses = [r async for r in gw.stub.StreamTranscribe(reqs())]
    assert [len(m) for m in _binary(standin.connections[0])] == [FRAME] * len(frames)
    assert [w.word for w in words(responses)] == ["w0", "w1"]


async def test_a_burst_leaves_in_messages_of_the_setting_each() -> None:
    """Frames that arrive together are cut at the setting's size, each message as soon as it is
    full: the next frame of the burst starts the next message, so the cut stays where the
    client's audio puts it (a result's frame is then the last of its message, not anywhere)."""
    audio = counter_audio(0, 5)  # 20 frames: four messages of five
    frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
    async with DeepgramStandIn() as standin:
        async with running_gateway(standin.url, coalesce_audio_ms=COALESCE_MS) as gw:
            started = asyncio.Event()

            async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
                yield pb.StreamTranscribeRequest(config=LINEAR16)
                # Once the upstream is open (audio before that waits for it, and leaves at once).
                await started.wait()
                for frame in frames:
                    yield pb.StreamTranscribeRequest(audio=frame)
                await _until(lambda: _messages(standin) == 4, 5 * TIMING)

            responses = []
            async for response in gw.stub.StreamTranscribe(reqs()):
                responses.append(response)
                if response.HasField("session_started"):
                    started.set()
    binary = _binary(standin.connections[0])
    assert [len(m) // FRAME for m in binary] == [5, 5, 5, 5], [len(m) for m in binary]
    assert [w.word for w in words(responses)] == ["w0", "w1", "w2", "w3", "w4"]
