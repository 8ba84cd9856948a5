"""Audio sources for a transcription: what to send for an input, chunking, pacing, live reads.

`plan_audio` (pure) decides what to send for the first bytes of an input, by the rules of
`clients/testdata/README.md` that every client language shares; WAV headers are read with the
standard library's `wave`. The async helpers produce `bytes` chunks ready to be sent as
`StreamTranscribeRequest.audio`: `read_input` from a file or a pipe as bytes arrive, `pace` at
real time, `http_chunks` from an HTTP stream, `thread_chunks` from any blocking iterable.
"""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import urllib.request
import wave
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from dataclasses import dataclass
from typing import BinaryIO, Generic, TypeVar

__all__ = [
    "FALLBACK_BYTES_PER_SECOND",
    "AudioPlan",
    "aiter_chunks",
    "bytes_per_second",
    "http_chunks",
    "pace",
    "plan_audio",
    "read_input",
    "split_chunks",
    "thread_chunks",
    "until",
]

#: Pacing rate for audio whose byte rate cannot be known without decoding it (compressed
#: containers such as MP3 or Ogg read from a file): 128 kbit/s, a common MP3 bit rate.
FALLBACK_BYTES_PER_SECOND = 16_000
#: Most bytes read to find the end of a WAV header (the fmt chunk and any chunks before data).
MAX_HEADER_BYTES = 1024 * 1024

#: Bytes per sample of the raw encodings whose byte rate follows from the sample rate.
_SAMPLE_WIDTHS = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AudioPlan:
    """What to send for an input and how fast.

    `encoding` is a Deepgram encoding name (`linear16`), or None for containerised audio.
    The audio is the input's bytes from `payload_offset` on, `payload_bytes` of them (None: to
    the end). `bytes_per_second` paces it; chunks are `chunk_bytes`, whole `frame_bytes`.
    """

    encoding: str | None
    sample_rate: int
    channels: int
    bytes_per_second: int
    frame_bytes: int
    chunk_bytes: int
    payload_offset: int
    payload_bytes: int | None


def bytes_per_second(encoding: str, sample_rate: int, channels: int = 1) -> int | None:
    """Byte rate of raw audio in `encoding` (a Deepgram name such as `linear16`), if fixed."""
    width = _SAMPLE_WIDTHS.get(encoding.lower())
    if width is None or sample_rate <= 0:
        return None
    return width * sample_rate * max(channels, 1)


@dataclass(frozen=True, slots=True)
class _Wav:
    channels: int
    sample_rate: int
    sample_width: int
    data_offset: int
    data_bytes: int | None


def _read_wav(head: bytes) -> _Wav | None:
    """The WAV header in `head`; None if `head` is no integer-PCM WAV; EOFError if cut short."""
    if len(head) < 12 and b"RIFF".startswith(head[:4]):
        raise EOFError("a RIFF header cut short")
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    buffer = io.BytesIO(_plain_pcm_tag(head))
    try:
        with wave.open(buffer, "rb") as wav:
            size = wav.getnframes() * wav.getsampwidth() * wav.getnchannels()
            # `wave` stops reading at the data chunk's header: the samples start here.
            offset = buffer.tell()
            return _Wav(wav.getnchannels(), wav.getframerate(), wav.getsampwidth(), offset, size)
    except wave.Error as exc:
        # `wave` reports a header that stops before its data chunk as a missing chunk.
        if "missing" in str(exc):
            raise EOFError(str(exc)) from exc
        return None


def _plain_pcm_tag(head: bytes) -> bytes:
    """WAVE_FORMAT_EXTENSIBLE with the PCM sub-format, relabelled plain PCM for Python 3.11's
    `wave` (3.12's reads it itself). Only a fmt chunk at its usual place is relabelled."""
    if head[12:16] != b"fmt " or len(head) < 22 or struct.unpack_from("<H", head, 20)[0] != 0xFFFE:
        return head
    if len(head) < 46:
        raise EOFError("an extensible fmt chunk cut short")
    if struct.unpack_from("<H", head, 44)[0] == 1:
        return head[:20] + b"\x01\x00" + head[22:]
    return head


def plan_audio(
    head: bytes,
    *,
    encoding: str | None = None,
    sample_rate: int = 0,
    chunk_ms: int = 50,
    complete: bool = True,
) -> AudioPlan | None:
    """What to send for an input that starts with `head` (the whole file, or what a pipe has
    given so far: with `complete=False`, None means "read more", for a WAV header cut short).

    A 16-bit PCM WAV is sent as raw linear16 (its data chunk only) with the header's rate and
    channels; any other input is sent whole as containerised audio, paced at its WAV header's
    byte rate if it is integer PCM, else at FALLBACK_BYTES_PER_SECOND. An explicit `encoding`
    sends the WAV data chunk (or the whole input) with that encoding; `sample_rate` overrides
    the header.
    """
    try:
        wav = _read_wav(head)
    except EOFError:
        if not complete and len(head) < MAX_HEADER_BYTES:
            return None
        wav = None
    if encoding is None and wav is not None and wav.sample_width == 2:
        encoding = "linear16"
    if encoding is None:
        rate = wav.sample_rate * wav.channels * wav.sample_width if wav is not None else 0
        rate = rate or FALLBACK_BYTES_PER_SECOND
        return AudioPlan(None, 0, 0, rate, 1, max(rate * chunk_ms // 1000, 1), 0, None)
    channels = wav.channels if wav is not None else 1
    sample_rate = sample_rate or (wav.sample_rate if wav is not None else 0)
    frame = _SAMPLE_WIDTHS[encoding] * channels if encoding in _SAMPLE_WIDTHS else 1
    rate = bytes_per_second(encoding, sample_rate, channels) or FALLBACK_BYTES_PER_SECOND
    chunk = max(rate * chunk_ms // 1000 // frame, 1) * frame
    if wav is None:
        return AudioPlan(encoding, sample_rate, channels, rate, frame, chunk, 0, None)
    size = wav.data_bytes
    available = len(head) - wav.data_offset if complete else None
    if (
        size is None
        or size in _UNKNOWN_SIZES
        or size >= 0xFFFFFFFF - 8
        or (available is not None and size > available)
    ):
        size = None
    return AudioPlan(encoding, sample_rate, channels, rate, frame, chunk, wav.data_offset, size)


async def read_input(
    stream: BinaryIO,
    *,
    encoding: str | None = None,
    sample_rate: int = 0,
    chunk_ms: int = 50,
) -> tuple[AudioPlan, AsyncIterator[bytes]]:
    """Opens an input (a file, or a pipe such as stdin) and returns its plan and its audio,
    read as it arrives: a pipe's bytes are passed on at their own pace, never waited for to
    fill a chunk. Reads run on a daemon thread, so a pipe that never ends keeps nothing alive.
    """
    reads = thread_chunks(_reads(stream, 65536))
    head = b""
    plan = None
    try:
        async for piece in reads:
            head += piece
            plan = plan_audio(
                head, encoding=encoding, sample_rate=sample_rate, chunk_ms=chunk_ms, complete=False
            )
            if plan is not None:
                break
    except BaseException:
        await reads.aclose()  # now, not when collected: the reader thread stops reading
        raise
    if plan is None:  # the input ended within its first bytes
        plan = plan_audio(head, encoding=encoding, sample_rate=sample_rate, chunk_ms=chunk_ms)
        assert plan is not None
    return plan, _payload(head, reads, plan)


def _reads(stream: BinaryIO, size: int) -> Iterator[bytes]:
    read = getattr(stream, "read1", stream.read)
    while chunk := read(size):
        yield chunk


async def _payload(head: bytes, rest: AsyncIterator[bytes], plan: AudioPlan) -> AsyncIterator[bytes]:
    left = plan.payload_bytes
    first = head[plan.payload_offset :]
    pieces = _prepend(first, rest)
    try:
        async for piece in pieces:
            kept = piece if left is None else piece[:left]
            if left is not None:
                left -= len(kept)
            if kept:
                yield kept
            if left == 0:
                return
    finally:
        if isinstance(rest, AsyncGenerator):
            await rest.aclose()


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for piece in rest:
        yield piece


def split_chunks(data: bytes, size: int) -> Iterator[bytes]:
    """Cuts `data` into chunks of `size` bytes (the last one may be shorter)."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


async def rechunk(chunks: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """Chunks of exactly `size` bytes (the last may be shorter), for pacing a file evenly."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


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
    async for chunk in aiter_chunks(chunks):
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
    iterator = aiter(chunks) if isinstance(chunks, AsyncIterable) else aiter_chunks(chunks)
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


async def thread_chunks(chunks: Iterable[T], *, queue_size: int = 64) -> AsyncGenerator[T, None]:
    """Yields the items of a blocking iterable (a pipe's reads, a microphone) read on a daemon
    thread and handed over through a bounded queue; its exceptions are raised here.

    Once this generator is closed the thread reads nothing more: it stops after the read in
    progress returns, closing `chunks` there if it is a generator (in the thread that runs it,
    so its `finally` and `with` blocks run, an HTTP response is closed)."""
    return_items: _Handover[T] = _Handover(queue_size)

    def read() -> None:
        iterator = iter(chunks)
        try:
            for chunk in iterator:
                if not return_items.put(_Item(chunk)):
                    return
            return_items.put(None)
        except BaseException as exc:  # handed to the event loop and re-raised there
            return_items.put(exc)
        finally:
            if isinstance(iterator, Generator):
                iterator.close()

    async for item in return_items.run(read, "audio-reader"):
        yield item


async def http_chunks(
    url: str, *, socket_timeout: float = 30.0, queue_size: int = 64
) -> AsyncIterator[bytes]:
    """Yields the body of an HTTP(S) response as it arrives (a radio stream, a file).

    HTTP errors and network failures are raised as `OSError` (`urllib.error.URLError` or
    `HTTPError`).
    """

    def body() -> Iterator[bytes]:
        request = urllib.request.Request(url, headers={"User-Agent": "transcribe-client"})
        with urllib.request.urlopen(request, timeout=socket_timeout) as response:
            while chunk := response.read1(65536):
                yield chunk

    async for chunk in thread_chunks(body(), queue_size=queue_size):
        yield chunk


@dataclass(frozen=True, slots=True)
class _Item(Generic[T]):
    value: T


class _Handover(Generic[T]):
    """A blocking producer thread feeding an event loop, at most `size` items in flight.

    The thread never creates a coroutine: it takes a slot from a thread semaphore and schedules
    a plain `put_nowait` on the loop. A coroutine made in the thread and left unawaited because
    the loop closed first would be reported as "never awaited" when it is collected. Items are
    wrapped, so that any value (None, an exception object) passes as itself.
    """

    def __init__(self, size: int) -> None:
        # Unbounded by itself: the slots bound it.
        self._queue: asyncio.Queue[_Item[T] | BaseException | None] = asyncio.Queue()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def put(self, item: _Item[T] | BaseException | None) -> bool:
        """From the thread: hands `item` over; False once nobody listens any more."""
        assert self._loop is not None
        while not self._slots.acquire(timeout=0.5):
            if self._closed.is_set():
                return False
        if self._closed.is_set():
            return False
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed
            return False
        return True

    async def run(self, target: Callable[[], None], name: str) -> AsyncIterator[T]:
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=target, name=name, daemon=True).start()
        try:
            while True:
                item = await self._queue.get()
                self._slots.release()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item.value
        finally:
            self._closed.set()


async def aiter_chunks(chunks: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Either kind of iterable as an async iterator, skipping empty chunks."""
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            if chunk:
                yield chunk
    else:
        for chunk in chunks:
            if chunk:
                yield chunk
