"""A stream's life over a real socket: results, Finalize, CloseStream, idle and bad audio closes."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from websockets.asyncio.client import connect

from tests.conftest import TIMING
from tests.engine.conftest import Transcript, read_all, running_engine, send_audio, stream, wer
from tests.engine.media import chunks, encode
from tests.support import speech
from transcribe_engine.protocol import NET0001_REASON

pytestmark = pytest.mark.engine

CLIP = speech.WEATHER
REFERENCE = CLIP.text
RAW = "?encoding=linear16&sample_rate=16000"
SAMPLE = speech.HELLO.path


async def test_close_stream_sends_results_then_metadata_then_1000() -> None:
    """CloseStream flushes the final Results, then one Metadata, then closes 1000."""
    pcm = CLIP.pcm()
    async with running_engine() as engine:
        transcript = await stream(engine.url + RAW + "&punctuate=true&extra=run:ci", chunks(pcm, 3200))
    assert transcript.close_code == 1000
    assert transcript.messages[-1]["type"] == "Metadata"
    assert len(transcript.of_type("Metadata")) == 1
    metadata = transcript.messages[-1]
    assert metadata["duration"] == pytest.approx(len(pcm) / 32000, abs=0.01)
    assert metadata["extra"] == {"run": "ci"}
    assert metadata["models"] == [transcript.finals()[0]["metadata"]["model_uuid"]]
    assert wer(REFERENCE, transcript.text()) <= 0.2
    words = [w for m in transcript.finals() for w in m["channel"]["alternatives"][0]["words"]]
    assert all(0 <= w["start"] <= w["end"] <= metadata["duration"] + 0.01 for w in words)
    assert all(0 < w["confidence"] <= 1 for w in words)
    assert all("punctuated_word" in w for w in words)
    request_ids = {m["metadata"]["request_id"] for m in transcript.of_type("Results")}
    assert request_ids == {metadata["request_id"]}


async def test_idle_socket_gets_metadata_then_1011_net0001() -> None:
    """Without any frame for the idle timeout, Metadata comes and then close 1011 NET-0001."""
    async with running_engine(idle_timeout_s=1.0) as engine, connect(engine.url + RAW) as ws:
        started = time.monotonic()
        transcript = await read_all(ws, Transcript())
    assert time.monotonic() - started >= 0.9
    assert transcript.close_code == 1011
    assert transcript.close_reason == NET0001_REASON
    assert [m["type"] for m in transcript.messages] == ["Metadata"]
    assert transcript.messages[0]["duration"] == 0.0


async def test_keepalive_resets_the_idle_timer() -> None:
    """KeepAlive every half timeout keeps the socket open well past the timeout; then it closes."""
    timeout = 1.0 * TIMING
    async with running_engine(idle_timeout_s=timeout) as engine, connect(engine.url + RAW) as ws:
        transcript = Transcript()
        reader = asyncio.create_task(read_all(ws, transcript))
        last = time.monotonic()
        for _ in range(6):  # three timeouts' worth of keepalives
            await ws.send(json.dumps({"type": "KeepAlive"}))
            last = time.monotonic()
            done, _ = await asyncio.wait({reader}, timeout=timeout / 2)
            assert not done, "closed although KeepAlive was sent"
        await reader
    assert time.monotonic() - last >= timeout * 0.9
    assert transcript.close_code == 1011


async def test_finalize_flushes_with_from_finalize() -> None:
    """Finalize turns the open window into a final marked from_finalize, and the stream goes on."""
    pcm = CLIP.pcm()
    async with running_engine() as engine, connect(engine.url + RAW + "&endpointing=false") as ws:
        transcript = Transcript()
        reader = asyncio.create_task(read_all(ws, transcript))
        await send_audio(ws, chunks(pcm, 3200))
        await ws.send(json.dumps({"type": "Finalize"}))
        await transcript.wait_for(lambda messages: any(m.get("from_finalize") for m in messages))
        await send_audio(ws, chunks(pcm, 3200))
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader
    flushed = [m for m in transcript.finals() if m["from_finalize"]]
    assert len(flushed) == 1
    assert flushed[0]["is_final"]
    assert wer(REFERENCE, flushed[0]["channel"]["alternatives"][0]["transcript"]) <= 0.2
    # The second copy of the clip is transcribed after the flush, and the stream ends normally.
    assert wer(f"{REFERENCE} {REFERENCE}", transcript.text()) <= 0.2
    assert transcript.close_code == 1000


async def test_garbage_container_closes_1008_data0000() -> None:
    """Bytes that are no audio format close the socket 1008 with DATA-0000."""
    async with running_engine() as engine, connect(engine.url) as ws:
        transcript = Transcript()
        reader = asyncio.create_task(read_all(ws, transcript))
        await send_audio(ws, chunks(b"definitely not an audio container. " * 2000, 4096))
        await reader
    assert transcript.close_code == 1008
    assert "DATA-0000" in transcript.close_reason


async def test_zero_length_frames_are_harmless() -> None:
    """Empty binary frames neither crash nor end the stream."""
    pcm = CLIP.pcm()
    pieces = [piece for chunk in chunks(pcm, 6400) for piece in (b"", chunk)]
    async with running_engine() as engine:
        transcript = await stream(engine.url + RAW, pieces)
    assert transcript.close_code == 1000
    assert wer(REFERENCE, transcript.text()) <= 0.2


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [
        ("wav", "pcm_s16le", 16000),
        ("mp3", "libmp3lame", 44100),
        ("ogg", "libopus", 48000),
        ("webm", "libopus", 48000),
    ],
)
async def test_containerised_audio(container: str, codec: str, rate: int) -> None:
    """WAV, MP3, Ogg/Opus and WebM without an encoding parameter are detected and transcribed."""
    data = encode(CLIP.pcm(), container=container, codec=codec, rate=rate)
    async with running_engine() as engine:
        transcript = await stream(engine.url, chunks(data, 1024))
    assert transcript.close_code == 1000
    assert wer(REFERENCE, transcript.text()) <= 0.2


@pytest.mark.parametrize(("codec", "encoding"), [("pcm_mulaw", "mulaw"), ("pcm_alaw", "alaw")])
async def test_g711_at_8khz(codec: str, encoding: str) -> None:
    """Telephone audio (mu-law, A-law at 8 kHz) is transcribed."""
    data = encode(speech.TRAIN.pcm(), container=encoding, codec=codec, rate=8000)
    async with running_engine() as engine:
        transcript = await stream(f"{engine.url}?encoding={encoding}&sample_rate=8000", chunks(data, 800))
    assert wer(speech.TRAIN.text, transcript.text()) <= 0.25, transcript.text()


async def test_multichannel_transcribes_each_channel() -> None:
    """multichannel=true reports each channel separately with channel_index [i, total]."""
    speech = np.frombuffer(CLIP.pcm(), "<i2")
    silence = np.zeros_like(speech)
    stereo = np.stack([silence, speech], axis=1).reshape(-1).tobytes()
    query = "?encoding=linear16&sample_rate=16000&channels=2&multichannel=true"
    async with running_engine() as engine:
        transcript = await stream(engine.url + query, chunks(stereo, 6400))
    assert {tuple(m["channel_index"]) for m in transcript.of_type("Results")} <= {(0, 2), (1, 2)}
    assert transcript.text(channel=0) == ""
    assert wer(REFERENCE, transcript.text(channel=1)) <= 0.2
    assert transcript.messages[-1]["channels"] == 2


async def test_stereo_without_multichannel_is_mixed_down() -> None:
    """Two channels without multichannel give one transcript on channel [0, 1]."""
    speech = np.frombuffer(CLIP.pcm(), "<i2")
    stereo = np.stack([speech, speech], axis=1).reshape(-1).tobytes()
    async with running_engine() as engine:
        transcript = await stream(engine.url + RAW + "&channels=2", chunks(stereo, 6400))
    assert {tuple(m["channel_index"]) for m in transcript.of_type("Results")} == {(0, 1)}
    assert wer(REFERENCE, transcript.text()) <= 0.2


@pytest.mark.slow
async def test_live_stream_interims_events_and_endpoints() -> None:
    """At real-time pace: SpeechStarted, interims about every second, speech_final, UtteranceEnd."""
    # Two sentences with a pause between them and silence after: endpoints and an UtteranceEnd.
    pcm = speech.joined((speech.TRAIN, speech.THANKS), gap_s=1.5)
    query = RAW + "&interim_results=true&vad_events=true&utterance_end_ms=1000&endpointing=300"
    async with running_engine() as engine:
        transcript = await stream(engine.url + query, chunks(pcm, 3200), pace_s=0.1)
    kinds = [m["type"] for m in transcript.messages]
    assert kinds[0] == "SpeechStarted"
    assert "UtteranceEnd" in kinds
    # Short phrases may end before their second interim is due, and an interim overtaken by its
    # final is dropped; across 9 s at least two must come.
    assert len(transcript.interims()) >= 2
    assert any(m["channel"]["alternatives"][0]["words"] for m in transcript.interims())
    assert any(m["speech_final"] for m in transcript.finals())
    # Interims never report a window that was already final.
    final_ends = [m["start"] + m["duration"] for m in transcript.finals()]
    for index, message in enumerate(transcript.messages):
        if message["type"] == "Results" and not message["is_final"]:
            earlier = [
                m["start"] + m["duration"]
                for m in transcript.messages[:index]
                if m["type"] == "Results" and m["is_final"]
            ]
            assert message["start"] >= max(earlier, default=0.0) - 1e-6
    assert final_ends == sorted(final_ends)
    assert wer(f"{speech.TRAIN.text} {speech.THANKS.text}", transcript.text()) <= 0.3


async def test_finalize_one_channel() -> None:
    """Finalize with a channel flushes only that channel."""
    speech = np.frombuffer(CLIP.pcm(), "<i2")
    stereo = np.stack([speech, speech], axis=1).reshape(-1).tobytes()
    query = "?encoding=linear16&sample_rate=16000&channels=2&multichannel=true&endpointing=false"
    async with running_engine() as engine, connect(engine.url + query) as ws:
        transcript = Transcript()
        reader = asyncio.create_task(read_all(ws, transcript))
        await send_audio(ws, chunks(stereo, 6400))
        await ws.send(json.dumps({"type": "Finalize", "channel": 1}))
        await transcript.wait_for(lambda messages: any(m.get("from_finalize") for m in messages))
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader
    flushed = [m for m in transcript.of_type("Results") if m["from_finalize"]]
    assert [m["channel_index"] for m in flushed] == [[1, 2]]
    assert wer(REFERENCE, flushed[0]["channel"]["alternatives"][0]["transcript"]) <= 0.2
    assert wer(REFERENCE, transcript.text(channel=0)) <= 0.2


async def test_pocketsphinx_recognizer_streams() -> None:
    """The light pocketsphinx backend answers the same protocol with words and times."""
    pcm = speech.TRAIN.pcm()
    async with running_engine(recognizer="pocketsphinx") as engine:
        transcript = await stream(engine.url + RAW + "&interim_results=true", chunks(pcm, 3200))
    assert transcript.close_code == 1000
    words = [w for m in transcript.finals() for w in m["channel"]["alternatives"][0]["words"]]
    assert words, "pocketsphinx produced no words"
    # Its accuracy on synthetic speech is poor (real speech is bench.engine's job): check the
    # words' times instead, which must lie within the audio and move forward.
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w["start"] <= w["end"] <= speech.TRAIN.duration_s + 0.1 for w in words)
    assert transcript.finals()[0]["metadata"]["model_info"]["arch"] == "pocketsphinx"


async def test_demo_sample_is_transcribed() -> None:
    """The clip shipped for the README demo comes out nearly word for word."""
    data = SAMPLE.read_bytes()
    async with running_engine() as engine:
        transcript = await stream(engine.url + "?punctuate=true", chunks(data, 8000))
    reference = (
        "Hello, and welcome to the transcription gateway. This short recording was made for the "
        "demo, so that anyone can try the service without a network connection."
    )
    assert wer(reference, transcript.text()) <= 0.1
