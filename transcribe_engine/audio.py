"""Incremental audio decoding to 16 kHz mono float32, one array per output channel.

Raw sample formats (linear16, linear32, mulaw, alaw) are converted inline; containerised audio
(WAV, MP3, Ogg/Opus, WebM, FLAC) is demuxed and decoded by PyAV (FFmpeg) in a worker thread that
reads from an in-memory pipe as the bytes arrive. Both report decoded audio through a callback so
the caller sees one interface; the container decoder calls it from its own thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import av
import av.error
import numpy as np
import numpy.typing as npt

from transcribe_engine.protocol import MAX_CHANNELS, Encoding
from transcribe_engine.protocol import MAX_SAMPLE_RATE as MAX_RATE
from transcribe_engine.protocol import MIN_SAMPLE_RATE as MIN_RATE

logger = logging.getLogger(__name__)

SAMPLE_RATE: Final = 16_000
Samples = npt.NDArray[np.float32]
# Decoded audio for every output channel, equal lengths.
AudioSink = Callable[[list[Samples]], None]
ErrorSink = Callable[[Exception], None]

# Small probes so the first transcript is not held back until FFmpeg has seen megabytes, and
# bytes that are not audio are refused after 32 KB rather than after FFmpeg's default 1 MB.
_PROBE_OPTIONS: Final = {
    "probesize": "2048",
    "formatprobesize": "32768",
    "analyzeduration": "0",
    "fpsprobesize": "0",
}


class AudioDecodeError(Exception):
    """The bytes are not audio the engine can decode (Deepgram's DATA-0000)."""


class AudioDecoder(Protocol):
    def feed(self, data: bytes) -> None: ...
    def drained(self, timeout: float) -> bool:
        """Block until everything fed so far was decoded and delivered, or the timeout."""
        ...

    def finish(self, timeout: float) -> None:
        """No more bytes: flush whatever is buffered and deliver it."""
        ...

    def wait_below(self, limit: int, timeout: float) -> bool:
        """Block until at most ``limit`` fed bytes wait to be decoded, or the timeout."""
        ...

    def close(self) -> None: ...


def _g711_table(alaw: bool) -> npt.NDArray[np.float32]:
    codes = np.arange(256, dtype=np.int32)
    if alaw:
        a = codes ^ 0x55
        exponent = (a >> 4) & 0x07
        mantissa = a & 0x0F
        magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
        values = np.where(a & 0x80, magnitude, -magnitude)
    else:
        u = ~codes & 0xFF
        exponent = (u >> 4) & 0x07
        mantissa = u & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        values = np.where(u & 0x80, -magnitude, magnitude)
    table = (values / 32768.0).astype(np.float32)
    table.setflags(write=False)
    return table


_ULAW: Final = _g711_table(alaw=False)
_ALAW: Final = _g711_table(alaw=True)
_FLOAT32: Final = "float32"  # WAV format 3; not a Deepgram encoding name
SampleFormat = Encoding | str
_BYTES_PER_SAMPLE: Final[dict[SampleFormat, int]] = {
    Encoding.LINEAR16: 2,
    Encoding.LINEAR32: 4,
    Encoding.MULAW: 1,
    Encoding.ALAW: 1,
    _FLOAT32: 4,
}


class _Resampler:
    """Stateful conversion of one planar float stream to 16 kHz (FFmpeg's swresample)."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._resampler = (
            None if rate == SAMPLE_RATE else av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        )

    def push(self, samples: Samples) -> Samples:
        if self._resampler is None:
            return samples
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = self._rate
        return _concat(f.to_ndarray()[0] for f in self._resampler.resample(frame))

    def flush(self) -> Samples:
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return _concat(f.to_ndarray()[0] for f in self._resampler.resample(None))


def _concat(parts: object) -> Samples:
    arrays = [np.asarray(p, dtype=np.float32) for p in parts]  # type: ignore[attr-defined]
    if not arrays:
        return np.zeros(0, np.float32)
    return np.concatenate(arrays).astype(np.float32, copy=False)


class RawDecoder:
    """Headerless PCM/G.711 at any rate and channel count; split or downmixed per channel."""

    def __init__(
        self, encoding: SampleFormat, sample_rate: int, channels: int, *, split: bool, sink: AudioSink
    ) -> None:
        self._encoding = encoding
        self._width = _BYTES_PER_SAMPLE[encoding]
        self._channels = channels
        self._split = split
        self._sink = sink
        self._pending = b""  # a frame cut between two websocket messages
        outputs = channels if split else 1
        self._resamplers = [_Resampler(sample_rate) for _ in range(outputs)]

    def _convert(self, data: bytes) -> Samples:
        if self._encoding is Encoding.LINEAR16:
            return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
        if self._encoding is Encoding.LINEAR32:
            return (np.frombuffer(data, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
        if self._encoding == _FLOAT32:
            return np.frombuffer(data, "<f4").astype(np.float32)
        table = _ULAW if self._encoding is Encoding.MULAW else _ALAW
        return table[np.frombuffer(data, np.uint8)]

    def feed(self, data: bytes) -> None:
        buffer = self._pending + data
        frame_bytes = self._width * self._channels
        usable = len(buffer) - len(buffer) % frame_bytes
        self._pending = buffer[usable:]
        if usable == 0:
            return
        samples = self._convert(buffer[:usable]).reshape(-1, self._channels).T
        planes = list(samples) if self._split else [samples.mean(axis=0, dtype=np.float32)]
        out = [r.push(np.ascontiguousarray(p)) for r, p in zip(self._resamplers, planes, strict=True)]
        self._sink(out)

    def drained(self, timeout: float) -> bool:
        return True

    def wait_below(self, limit: int, timeout: float) -> bool:
        return True  # decoded as it is fed

    def finish(self, timeout: float) -> None:
        tails = [r.flush() for r in self._resamplers]
        if any(len(t) for t in tails):
            length = max(len(t) for t in tails)
            self._sink([np.pad(t, (0, length - len(t))) for t in tails])

    def close(self) -> None:
        self._pending = b""


class _Pipe:
    """A blocking file-like object PyAV reads from while the event loop writes to it."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._eof = False
        self._cond = threading.Condition()
        self._waiting = False  # the reader is blocked on an empty buffer

    def write(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self._cond.notify_all()

    def close_write(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        with self._cond:
            while not self._chunks and not self._eof:
                self._waiting = True
                self._cond.notify_all()
                self._cond.wait()
            self._waiting = False
            if not self._chunks:
                return b""
            data = b"".join(self._chunks)
            if 0 <= size < len(data):
                self._chunks = [data[size:]]
                self._cond.notify_all()
                return data[:size]
            self._chunks = []
            self._cond.notify_all()  # a writer may wait for room
            return data

    def wait_below(self, limit: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: sum(map(len, self._chunks)) <= limit or self._eof, timeout)

    def wait_starved(self, timeout: float) -> bool:
        """True once the reader has consumed everything and is waiting for more."""
        with self._cond:
            return self._cond.wait_for(lambda: (self._waiting and not self._chunks) or self._eof, timeout)


class ContainerDecoder:
    """Any container/codec FFmpeg knows, decoded as the bytes arrive."""

    def __init__(self, *, split: bool, sink: AudioSink, on_error: ErrorSink) -> None:
        self._split = split
        self._sink = sink
        self._on_error = on_error
        self._pipe = _Pipe()
        self._closed = threading.Event()
        self._done = threading.Event()
        self._channels = 1
        self._thread = threading.Thread(target=self._run, name="engine-audio-demux", daemon=True)
        self._thread.start()

    @property
    def channels(self) -> int:
        """Channels found in the stream (known once the header was read)."""
        return self._channels

    def feed(self, data: bytes) -> None:
        self._pipe.write(data)

    def drained(self, timeout: float) -> bool:
        return self._pipe.wait_starved(timeout) or self._done.is_set()

    def wait_below(self, limit: int, timeout: float) -> bool:
        return self._pipe.wait_below(limit, timeout) or self._done.is_set()

    def finish(self, timeout: float) -> None:
        self._pipe.close_write()
        self._done.wait(timeout)

    def close(self) -> None:
        self._closed.set()
        self._pipe.close_write()

    def _run(self) -> None:
        try:
            self._decode()
        except av.error.FFmpegError as exc:
            if not self._closed.is_set():
                self._on_error(AudioDecodeError(str(exc)))
        except AudioDecodeError as exc:
            if not self._closed.is_set():
                self._on_error(exc)
        except Exception as exc:  # a decoder thread must report, never die silently
            logger.exception("audio decoder failed")
            if not self._closed.is_set():
                self._on_error(AudioDecodeError(f"{type(exc).__name__}: {exc}"))
        finally:
            self._done.set()

    def _decode(self) -> None:
        with av.open(self._pipe, mode="r", options=dict(_PROBE_OPTIONS)) as container:
            if not container.streams.audio:
                raise AudioDecodeError("no audio stream in the container")
            stream = container.streams.audio[0]
            resampler: av.AudioResampler | None = None
            for packet in container.demux(stream):
                if self._closed.is_set():
                    return
                for frame in packet.decode():
                    if resampler is None:
                        self._channels = frame.layout.nb_channels
                        resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=SAMPLE_RATE)
                    self._deliver(resampler.resample(frame))
            if resampler is not None:
                self._deliver(resampler.resample(None))

    def _deliver(self, frames: list[av.AudioFrame]) -> None:
        if not frames:
            return
        planes = np.concatenate([f.to_ndarray() for f in frames], axis=1).astype(np.float32)
        if self._split:
            self._sink([np.ascontiguousarray(p) for p in planes])
        else:
            self._sink([planes.mean(axis=0, dtype=np.float32)])


_WAV_HEADER_LIMIT: Final = 1 << 16  # a RIFF header longer than this is not worth waiting for
_WAV_FORMATS: Final[dict[tuple[int, int], SampleFormat]] = {
    (1, 16): Encoding.LINEAR16,
    (1, 32): Encoding.LINEAR32,
    (3, 32): _FLOAT32,
    (6, 8): Encoding.ALAW,
    (7, 8): Encoding.MULAW,
}
_WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE


@dataclass(frozen=True, slots=True)
class WavHeader:
    sample_format: SampleFormat
    sample_rate: int
    channels: int
    data_offset: int


def parse_wav_header(data: bytes) -> WavHeader | None:
    """The PCM layout of a RIFF/WAVE stream, or None if more bytes are needed.

    Raises ValueError for a WAV whose samples this parser does not handle (FFmpeg then tries).
    """
    if len(data) < 12:
        return None
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    while len(data) >= offset + 8:
        chunk_id = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        body = offset + 8
        if chunk_id == b"data":
            if fmt is None:
                raise ValueError("WAV data before its fmt chunk")
            tag, channels, rate, bits = fmt
            sample_format = _WAV_FORMATS.get((tag, bits))
            if sample_format is None or channels < 1 or rate < 1:
                raise ValueError(f"WAV format {tag} with {bits}-bit samples")
            return WavHeader(sample_format, rate, channels, body)
        if len(data) < body + size:
            return None
        if chunk_id == b"fmt ":
            tag = int.from_bytes(data[body : body + 2], "little")
            channels = int.from_bytes(data[body + 2 : body + 4], "little")
            rate = int.from_bytes(data[body + 4 : body + 8], "little")
            bits = int.from_bytes(data[body + 14 : body + 16], "little")
            if tag == _WAVE_FORMAT_EXTENSIBLE and size >= 26:
                tag = int.from_bytes(data[body + 24 : body + 26], "little")
            fmt = (tag, channels, rate, bits)
        offset = body + size + (size & 1)  # chunks are padded to even sizes
    return None


def is_wav(prefix: bytes) -> bool:
    return len(prefix) >= 12 and prefix[:4] == b"RIFF" and prefix[8:12] == b"WAVE"


class SniffingDecoder:
    """Containerised audio of unknown format: WAV is read directly, the rest goes to FFmpeg.

    FFmpeg's WAV demuxer waits for whole large packets (about 2 s) on a pipe; parsing the
    RIFF header here and treating the rest as raw samples has no such delay.
    """

    def __init__(self, *, split: bool, sink: AudioSink, on_error: ErrorSink) -> None:
        self._split = split
        self._sink = sink
        self._on_error = on_error
        self._head = b""
        self._inner: AudioDecoder | None = None
        self._failed = False  # the error was reported; the stream is being closed

    def feed(self, data: bytes) -> None:
        if self._failed:
            return
        if self._inner is not None:
            self._inner.feed(data)
            return
        self._head += data
        self._choose(final=False)

    def _choose(self, *, final: bool) -> None:
        head = self._head
        if len(head) < 12 and not final:
            return
        inner: AudioDecoder
        if is_wav(head):
            try:
                header = parse_wav_header(head)
            except ValueError:
                header = None
                inner = ContainerDecoder(split=self._split, sink=self._sink, on_error=self._on_error)
            else:
                if header is None:
                    if len(head) > _WAV_HEADER_LIMIT or final:
                        self._on_error(AudioDecodeError("incomplete WAV header"))
                        self._head = b""
                        self._failed = True
                    return
                if not MIN_RATE <= header.sample_rate <= MAX_RATE or header.channels > MAX_CHANNELS:
                    # As for a declared rate: resampling from 1 Hz would blow a message up a
                    # thousandfold.
                    self._on_error(
                        AudioDecodeError(f"unsupported WAV: {header.sample_rate} Hz, {header.channels} ch")
                    )
                    self._head = b""
                    self._failed = True
                    return
                inner = RawDecoder(
                    header.sample_format,
                    header.sample_rate,
                    header.channels,
                    split=self._split,
                    sink=self._sink,
                )
                head = head[header.data_offset :]
        else:
            inner = ContainerDecoder(split=self._split, sink=self._sink, on_error=self._on_error)
        self._inner = inner
        self._head = b""
        if head:
            inner.feed(head)

    def drained(self, timeout: float) -> bool:
        return self._inner.drained(timeout) if self._inner is not None else True

    def wait_below(self, limit: int, timeout: float) -> bool:
        return self._inner.wait_below(limit, timeout) if self._inner is not None else True

    def finish(self, timeout: float) -> None:
        if self._inner is None and self._head:
            self._choose(final=True)
        if self._inner is not None:
            self._inner.finish(timeout)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
