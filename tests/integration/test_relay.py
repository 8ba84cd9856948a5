"""The relay's happy path, over real sockets: gRPC client -> gateway -> scripted stand-in."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator

from transcribe.v1 import transcribe_pb2 as pb

from tests.integration.conftest import LINEAR16, TEST_KEY, chunks, collect, requests, running_gateway, words
from tests.support import speech
from tests.support.standin import BLOCK_BYTES, BLOCK_SECONDS, DeepgramStandIn, Plan, counter_audio


async def test_wav_audio_reaches_upstream_byte_for_byte(standin: DeepgramStandIn) -> None:
    """Every audio byte of a speech WAV arrives upstream unchanged and in order."""
    with wave.open(str(speech.WEATHER.path), "rb") as wav:
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    config = pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate)
    async with running_gateway(standin.url) as gw:
        await collect(gw.stub, requests(config, *chunks(pcm, 3_333)))
    [upstream] = standin.connections
    assert upstream.audio == pcm
    assert upstream.texts[-1] == {"type": "CloseStream"}


async def test_session_started_first_summary_last(standin: DeepgramStandIn) -> None:
    """The first response names the upstream request, the last one sums the session up."""
    audio = counter_audio(0, 20)
    async with running_gateway(standin.url) as gw:
        responses = await collect(gw.stub, requests(LINEAR16, *chunks(audio, 1000)))
    [upstream] = standin.connections
    first, last = responses[0], responses[-1]
    assert first.WhichOneof("response") == "session_started"
    assert first.session_started.upstream_request_id == upstream.request_id
    assert first.session_started.session_id
    assert first.session_started.config == LINEAR16
    assert last.WhichOneof("response") == "summary"
    assert last.summary.audio_received_seconds == 20 * BLOCK_SECONDS
    assert last.summary.audio_relayed_seconds == 20 * BLOCK_SECONDS
    assert list(last.summary.upstream_request_ids) == [upstream.request_id]
    assert last.summary.reconnect_count == 0
    [metadata] = last.summary.upstream_metadata
    assert metadata.request_id == upstream.request_id
    assert metadata.duration_seconds == 20 * BLOCK_SECONDS
    assert [w.word for w in words(responses)] == [f"w{i}" for i in range(20)]


async def test_auth_header_carries_the_key(standin: DeepgramStandIn) -> None:
    """The gateway authenticates upstream with `Authorization: Token <key>`."""
    async with running_gateway(standin.url) as gw:
        await collect(gw.stub, requests(LINEAR16))
    [upstream] = standin.connections
    assert upstream.headers["Authorization"] == f"Token {TEST_KEY}"
    assert upstream.path == "/v1/listen"


async def test_no_key_means_no_authorization_header(standin: DeepgramStandIn) -> None:
    """A self-hosted upstream without a key gets no Authorization header at all."""
    async with running_gateway(standin.url, deepgram_api_key=None) as gw:
        await collect(gw.stub, requests(LINEAR16))
    assert "Authorization" not in standin.connections[0].headers


async def test_controls_are_relayed_in_order_with_audio(standin: DeepgramStandIn) -> None:
    """Finalize is sent upstream between the audio it follows and the audio after it."""
    finalize = pb.Control(finalize=pb.Finalize())
    finalize_one = pb.Control(finalize=pb.Finalize(channel=0))
    keepalive = pb.Control(keep_alive=pb.KeepAlive())
    a, b = counter_audio(0, 3), counter_audio(3, 2)
    async with running_gateway(standin.url) as gw:
        responses = await collect(gw.stub, requests(LINEAR16, a, finalize, keepalive, b, finalize_one))
    frames = standin.connections[0].frames
    assert frames == [
        a,
        '{"type":"Finalize"}',
        b,
        '{"type":"Finalize","channel":0}',
        '{"type":"CloseStream"}',
    ]
    finals = [r.result for r in responses if r.WhichOneof("response") == "result"]
    assert [r.from_finalize for r in finals] == [True, True]
    assert [w.word for r in finals for w in r.alternatives[0].words] == ["w0", "w1", "w2", "w3", "w4"]


async def test_gateway_keeps_the_upstream_alive_during_silence() -> None:
    """Without audio, the gateway sends KeepAlive upstream, so the upstream's idle timer never fires."""
    async with DeepgramStandIn(default=Plan(idle_timeout_s=0.6)) as standin:
        async with running_gateway(standin.url, keepalive_interval_s=0.2) as gw:

            async def slow() -> AsyncIterator[pb.StreamTranscribeRequest]:
                yield pb.StreamTranscribeRequest(config=LINEAR16)
                yield pb.StreamTranscribeRequest(audio=counter_audio(0, 1))
                await asyncio.sleep(1.5)
                yield pb.StreamTranscribeRequest(audio=counter_audio(1, 1))

            responses = await collect(gw.stub, slow())
    [upstream] = standin.connections
    keepalives = [t for t in upstream.texts if t == {"type": "KeepAlive"}]
    assert len(keepalives) >= 4
    assert upstream.close_code == 1000
    assert [w.word for w in words(responses)] == ["w0", "w1"]


async def test_empty_audio_chunks_are_ignored(standin: DeepgramStandIn) -> None:
    """Deepgram treats an empty binary frame as end of stream, so the gateway never sends one."""
    async with running_gateway(standin.url) as gw:
        await collect(gw.stub, requests(LINEAR16, b"", counter_audio(0, 1), b""))
    assert standin.connections[0].frames == [counter_audio(0, 1), '{"type":"CloseStream"}']


async def test_block_size_matches_counter_audio() -> None:
    """The counter audio helper makes blocks of 16 kHz linear16."""
    assert len(counter_audio(0, 3)) == 3 * BLOCK_BYTES == 3 * 2 * 16000 * BLOCK_SECONDS
