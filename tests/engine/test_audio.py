"""Incremental decoding of raw and containerised audio to 16 kHz float channels."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import pytest

from tests.engine.media import chunks, encode, pcm_to_float
from tests.support import speech
from transcribe_engine.audio import (
    AudioDecodeError,
    ContainerDecoder,
    RawDecoder,
    SniffingDecoder,
    parse_wav_header,
)
from transcribe_engine.protocol import Encoding

Planes = list[npt.NDArray[np.float32]]


class Collector:
    """Gathers what a decoder delivers, from whichever thread."""

    def __init__(self) -> None:
        self.planes: list[Planes] = []
        self.errors: list[Exception] = []
        self.lock = threading.Lock()

    def sink(self, planes: Planes) -> None:
        with self.lock:
            self.planes.append(planes)

    def error(self, exc: Exception) -> None:
        with self.lock:
            self.errors.append(exc)

    def channel(self, index: int) -> npt.NDArray[np.float32]:
        with self.lock:
            parts = [p[index] for p in self.planes]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def test_linear16_split_across_frames() -> None:
    """Samples cut between websocket messages are reassembled exactly."""
    source = (np.sin(np.arange(1600) / 10) * 10000).astype("<i2")
    collected = Collector()
    decoder = RawDecoder(Encoding.LINEAR16, 16000, 1, split=False, sink=collected.sink)
    for piece in chunks(source.tobytes(), 333):  # odd sizes cut samples in half
        decoder.feed(piece)
    np.testing.assert_allclose(collected.channel(0), source / 32768.0, atol=1e-6)


def test_stereo_8k_split_and_resampled() -> None:
    """Multichannel raw audio yields one 16 kHz plane per channel, in order."""
    left = np.full(8000, 8000, "<i2")
    right = np.full(8000, -8000, "<i2")
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    collected = Collector()
    decoder = RawDecoder(Encoding.LINEAR16, 8000, 2, split=True, sink=collected.sink)
    decoder.feed(interleaved.tobytes())
    decoder.finish(1.0)
    first, second = collected.channel(0), collected.channel(1)
    assert len(first) == len(second) == pytest.approx(16000, abs=64)
    assert np.median(first) == pytest.approx(8000 / 32768, abs=1e-3)
    assert np.median(second) == pytest.approx(-8000 / 32768, abs=1e-3)


def test_stereo_downmixed_without_multichannel() -> None:
    """Without multichannel the channels are averaged into one."""
    interleaved = np.array([1000, 3000] * 100, "<i2")
    collected = Collector()
    RawDecoder(Encoding.LINEAR16, 16000, 2, split=False, sink=collected.sink).feed(interleaved.tobytes())
    np.testing.assert_allclose(collected.channel(0), np.full(100, 2000 / 32768), atol=1e-6)


@pytest.mark.parametrize(
    ("encoding", "byte", "value"),
    [
        (Encoding.MULAW, 0xFF, 0),
        (Encoding.MULAW, 0x00, -32124),
        (Encoding.MULAW, 0x80, 32124),
        (Encoding.ALAW, 0xD5, 8),
        (Encoding.ALAW, 0x55, -8),
        (Encoding.ALAW, 0xAA, 32256),
    ],
)
def test_g711(encoding: Encoding, byte: int, value: int) -> None:
    """mu-law and A-law codes expand to the ITU G.711 linear values."""
    collected = Collector()
    RawDecoder(encoding, 16000, 1, split=False, sink=collected.sink).feed(bytes([byte]))
    assert collected.channel(0)[0] * 32768 == pytest.approx(value)


def test_linear32() -> None:
    """linear32 is signed 32-bit little-endian."""
    collected = Collector()
    RawDecoder(Encoding.LINEAR32, 16000, 1, split=False, sink=collected.sink).feed(
        np.array([2**30, -(2**30)], "<i4").tobytes()
    )
    np.testing.assert_allclose(collected.channel(0), [0.5, -0.5])


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [
        ("wav", "pcm_s16le", 16000),
        ("wav", "pcm_s16le", 44100),
        ("mp3", "libmp3lame", 44100),
        ("ogg", "libopus", 48000),
        ("webm", "libopus", 48000),
        ("flac", "flac", 16000),
    ],
)
def test_containers_decode_incrementally(container: str, codec: str, rate: int) -> None:
    """Containers decode while bytes arrive, and the tail is flushed by finish()."""
    pcm = speech.STORY.pcm()[: 16000 * 2 * 4]
    data = encode(pcm, container=container, codec=codec, rate=rate)
    collected = Collector()
    decoder = SniffingDecoder(split=False, sink=collected.sink, on_error=collected.error)
    try:
        pieces = chunks(data, 2048)
        for piece in pieces[: len(pieces) // 2]:
            decoder.feed(piece)
        assert decoder.drained(10.0)
        halfway = len(collected.channel(0))
        assert halfway > 0, "nothing decoded before the end of the stream"
        for piece in pieces[len(pieces) // 2 :]:
            decoder.feed(piece)
        decoder.finish(10.0)
    finally:
        decoder.close()
    assert collected.errors == []
    decoded = collected.channel(0)
    expected = pcm_to_float(pcm)
    assert len(decoded) == pytest.approx(len(expected), rel=0.05, abs=2000)
    # Same loudness envelope: the audio is the clip, not noise or silence.
    assert np.sqrt(np.mean(decoded**2)) == pytest.approx(np.sqrt(np.mean(expected**2)), rel=0.2)


def test_garbage_is_reported_without_end_of_stream() -> None:
    """Bytes that are not audio raise AudioDecodeError once the probe has seen enough."""
    collected = Collector()
    done = threading.Event()

    def error(exc: Exception) -> None:
        collected.error(exc)
        done.set()

    decoder = ContainerDecoder(split=False, sink=collected.sink, on_error=error)
    try:
        decoder.feed(b"this is certainly not audio data; " * 1000)
        assert done.wait(10.0)
    finally:
        decoder.close()
    assert isinstance(collected.errors[0], AudioDecodeError)
    assert collected.planes == []


def test_partial_header_then_end_of_stream_does_not_hang() -> None:
    """A container cut inside its header ends (with an error) when the stream ends."""
    data = encode(speech.WEATHER.pcm(), container="ogg", codec="libopus", rate=48000)
    collected = Collector()
    decoder = ContainerDecoder(split=False, sink=collected.sink, on_error=collected.error)
    decoder.feed(data[:20])
    decoder.finish(10.0)
    decoder.close()
    assert decoder.drained(0.1)


def test_wav_is_decoded_without_waiting_for_large_packets() -> None:
    """A WAV stream yields audio from its first data bytes, not after FFmpeg's 2 s packets."""
    pcm = speech.STORY.pcm()
    data = encode(pcm, container="wav", codec="pcm_s16le", rate=16000)
    collected = Collector()
    decoder = SniffingDecoder(split=False, sink=collected.sink, on_error=collected.error)
    decoder.feed(data[:4096])
    assert decoder.drained(1.0)
    decoded = collected.channel(0)
    header = parse_wav_header(data)
    assert header is not None
    assert len(decoded) == (4096 - header.data_offset) // 2
    np.testing.assert_allclose(decoded, pcm_to_float(pcm[: len(decoded) * 2]), atol=1e-6)


@pytest.mark.parametrize(
    ("codec", "expected"),
    [("pcm_s16le", "linear16"), ("pcm_f32le", "float32"), ("pcm_mulaw", "mulaw"), ("pcm_alaw", "alaw")],
)
def test_wav_header_formats(codec: str, expected: str) -> None:
    """The RIFF parser reads PCM, float and G.711 WAV headers, whole or in pieces."""
    data = encode(speech.WEATHER.pcm()[:3200], container="wav", codec=codec, rate=8000)
    assert parse_wav_header(data[:20]) is None
    header = parse_wav_header(data)
    assert header is not None
    assert (str(header.sample_format), header.sample_rate, header.channels) == (expected, 8000, 1)


def test_unusual_wav_falls_back_to_ffmpeg() -> None:
    """A WAV the parser does not handle (24-bit) is still decoded, by FFmpeg."""
    data = encode(speech.WEATHER.pcm(), container="wav", codec="pcm_s24le", rate=16000)
    with pytest.raises(ValueError, match="24-bit"):
        parse_wav_header(data)
    collected = Collector()
    decoder = SniffingDecoder(split=False, sink=collected.sink, on_error=collected.error)
    decoder.feed(data)
    decoder.finish(10.0)
    decoder.close()
    assert collected.errors == []
    assert len(collected.channel(0)) == pytest.approx(len(data) / 3, rel=0.05)
