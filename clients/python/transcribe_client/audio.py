"""Audio sources for a transcription stream: WAV parsing, chunking, real-time pacing, HTTP.

The pure helpers (`parse_wav`, `split_chunks`, `bytes_per_second`) do no I/O. The async ones
produce `bytes` chunks ready to be sent as `StreamTranscribeRequest.audio`.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

__all__ = [
    "FALLBACK_BYTES_PER_SECOND",
    "WavError",
    "WavInfo",
    "bytes_per_second",
    "http_chunks",
    "pace",
    "parse_wav",
    "split_chunks",
    "until",
]

#: Pacing rate for audio whose byte rate cannot be known without decoding it (compressed
#: containers such as MP3 or Ogg read from a file): 128 kbit/s, a common MP3 bit rate.
FALLBACK_BYTES_PER_SECOND = 16_000

#: Bytes per sample of the raw encodings whose byte rate follows from the sample rate.
_SAMPLE_WIDTHS = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class WavError(ValueError):
    """The bytes are not a WAV file this module can read."""


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a WAV header says about its audio."""

    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    byte_rate: int
    block_align: int
    data_offset: int
    data_size: int

    @property
    def is_linear16(self) -> bool:
        """The samples are 16-bit signed PCM, sendable as `AUDIO_ENCODING_LINEAR16`."""
        return self.format_tag in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_EXTENSIBLE) and (self.bits_per_sample == 16)

    @property
    def duration_seconds(self) -> float:
        """Length of the audio in the data chunk."""
        return self.data_size / self.byte_rate if self.byte_rate else 0.0


def parse_wav(data: bytes) -> WavInfo:
    """Reads the RIFF/WAVE header of `data` (a whole file, or at least up to its data chunk).

    A data chunk whose declared size is missing or larger than the file (as streamed WAV
    writers leave it) is taken to run to the end of `data`.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise WavError("truncated fmt chunk")
            fmt = struct.unpack_from("<HHIIHH", data, body)
            if fmt[0] == _WAVE_FORMAT_EXTENSIBLE and size >= 40 and body + 26 <= len(data):
                # The real format tag is the first two bytes of the sub-format GUID.
                (sub_format,) = struct.unpack_from("<H", data, body + 24)
                fmt = (sub_format, *fmt[1:])
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError("data chunk before fmt chunk")
            format_tag, channels, sample_rate, byte_rate, block_align, bits = fmt
            if channels == 0 or sample_rate == 0:
                raise WavError("fmt chunk has no channels or no sample rate")
            available = len(data) - body
            data_size = size if 0 < size <= available else available
            return WavInfo(
                format_tag=format_tag,
                channels=channels,
                sample_rate=sample_rate,
                bits_per_sample=bits,
                byte_rate=byte_rate,
                block_align=block_align,
                data_offset=body,
                data_size=data_size,
            )
        pos = body + size + (size & 1)  # chunks are padded to an even size
    raise WavError("no data chunk")


def bytes_per_second(encoding: str, sample_rate: int, channels: int = 1) -> int | None:
    """Byte rate of raw audio in `encoding` (a Deepgram name such as `linear16`), if fixed."""
    width = _SAMPLE_WIDTHS.get(encoding.lower())
    if width is None or sample_rate <= 0:
        return None
    return width * sample_rate * max(channels, 1)


def split_chunks(data: bytes, size: int) -> Iterator[bytes]:
    """Cuts `data` into chunks of `size` bytes (the last one may be shorter)."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


async def pace(chunks: Iterable[bytes] | AsyncIterable[bytes], rate: float) -> AsyncIterator[bytes]:
    """Yields `chunks` no faster than `rate` bytes per second of wall-clock time.

    Each chunk is released when the audio before it has had time to play, so the first one goes
    at once and a stream of N seconds takes about N seconds.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    async for chunk in _aiter(chunks):
        delay = start + sent / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield chunk
        sent += len(chunk)


async def until(stop: asyncio.Event, chunks: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yields from `chunks` until they end or `stop` is set, whichever comes first.

    A pending read of `chunks` (a pacing sleep, a network read) is cancelled when `stop` is set,
    so the caller can half-close its stream at once.
    """
    iterator = aiter(chunks) if isinstance(chunks, AsyncIterable) else _aiter(chunks)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            following = asyncio.ensure_future(anext(iterator))
            await asyncio.wait({following, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                await asyncio.wait({following})
                return
            try:
                chunk = following.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        stopped.cancel()
        if isinstance(iterator, AsyncGenerator):
            await iterator.aclose()


async def http_chunks(
    url: str, *, socket_timeout: float = 30.0, queue_size: int = 64
) -> AsyncIterator[bytes]:
    """Yields the body of an HTTP(S) response as it arrives (a radio stream, a file).

    The blocking `urllib` read runs on a daemon thread, so an endless stream never keeps the
    process alive; chunks are handed over through a bounded queue. HTTP errors and network
    failures are raised as `OSError` (`urllib.error.URLError` or `HTTPError`).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=queue_size)
    closed = threading.Event()

    def hand_over(item: bytes | BaseException | None) -> None:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not closed.is_set():
            with contextlib.suppress(TimeoutError):
                future.result(timeout=0.5)
                return
        future.cancel()

    def read() -> None:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "transcribe-client"})
            with urllib.request.urlopen(request, timeout=socket_timeout) as response:
                while not closed.is_set():
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    hand_over(chunk)
            hand_over(None)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            return
        except BaseException as exc:  # handed to the event loop and re-raised there
            with contextlib.suppress(RuntimeError):
                hand_over(exc)

    threading.Thread(target=read, name="http-audio", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()


async def _aiter(chunks: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk
