"""One transcription over `StreamTranscribe`, resumed on a new call when the gateway asks:
`transcribe` (grpc.aio) and `transcribe_sync` (blocking, the same on a private event loop).

Both send the config, then the audio as it comes, then half-close, and yield each response. A
call that ends UNAVAILABLE with a `ResumePoint` (a replica draining in a rolling restart, or the
gateway's upstream retries exhausted) is resumed on a new call to the same address: the audio
kept from the committed point on is resent with `start_offset_seconds` set, so the application
reads one transcript on one time base. Any other non-OK status raises `TranscribeError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from transcribe.v1 import transcribe_pb2, transcribe_pb2_grpc

from transcribe_client import audio as audio_io
from transcribe_client.resume import (
    AudioBuffer,
    ControlLog,
    PlacedControl,
    RawFormat,
    backoff_s,
    commit_byte,
    kept_for_resend,
    plan_resume,
    send_until,
)

__all__ = [
    "DEFAULT_ADDR",
    "AudioItem",
    "Resume",
    "ResumeEvent",
    "TranscribeError",
    "call_metadata",
    "channel_credentials",
    "error_from_status",
    "finalize",
    "keep_alive",
    "raw_format",
    "transcribe",
    "transcribe_sync",
]

DEFAULT_ADDR = "127.0.0.1:50051"

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
#: Most audio bytes per request message when the library resends or relays what it keeps.
_MAX_CHUNK_BYTES = 32 * 1024
#: `transcribe_sync`: responses read ahead of the caller, and how long a closing call may take.
_SYNC_READ_AHEAD = 64
_SYNC_JOIN_TIMEOUT_S = 5.0
_SAMPLE_WIDTHS = {
    transcribe_pb2.AUDIO_ENCODING_LINEAR16: 2,
    transcribe_pb2.AUDIO_ENCODING_LINEAR32: 4,
    transcribe_pb2.AUDIO_ENCODING_MULAW: 1,
    transcribe_pb2.AUDIO_ENCODING_ALAW: 1,
}

Metadata = Sequence[tuple[str, str]]
#: What the application's audio iterable yields: audio bytes, or a control sent in order with it.
AudioItem = bytes | transcribe_pb2.Control


class TranscribeError(Exception):
    """A `StreamTranscribe` call ended with a non-OK gRPC status.

    `reason` is the `ErrorInfo` reason of the status details (such as `DRAINING`), "" if none.
    `resume_point` is the `ResumePoint` the gateway sent with UNAVAILABLE, if any; with resume
    on (the default) the library has already used it, and raises only once it cannot.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        resume_point: transcribe_pb2.ResumePoint | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.resume_point = resume_point
        self.reason = reason

    @property
    def status_name(self) -> str:
        """The status code's canonical name, such as `INVALID_ARGUMENT`."""
        return str(self.code.name)

    def __str__(self) -> str:
        return f"{self.status_name}: {self.details}"


@dataclass(frozen=True, slots=True)
class Resume:
    """How a transcription resumes after UNAVAILABLE with a ResumePoint.

    `max_attempts`: resumes in a row without a new final result before giving up with the last
    error. `max_buffer_bytes`: most uncommitted audio kept for resending (8 MiB is over four
    minutes of 16 kHz linear16); audio dropped past it cannot be resent, and a resume that
    needs it gives up. Backoff is exponential with full jitter between the two bounds.
    """

    enabled: bool = True
    max_attempts: int = 5
    max_buffer_bytes: int = 8 * 1024 * 1024
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0


@dataclass(frozen=True, slots=True)
class ResumeEvent:
    """Told to `on_resume` before the library opens the next call.

    `error` is how the last call ended; `start_offset_seconds` and `resend_bytes` describe the
    next one; `delay_s` is the backoff it waits first; `attempt` counts from 1.
    """

    attempt: int
    error: TranscribeError
    start_offset_seconds: float
    resend_bytes: int
    delay_s: float


def call_metadata(token: str | None = None, metadata: Metadata = ()) -> list[tuple[str, str]]:
    """The call's metadata: `authorization: Bearer <token>` if a token is given, then `metadata`."""
    pairs = [("authorization", f"Bearer {token}")] if token else []
    return [*pairs, *metadata]


def channel_credentials(ca_file: str | os.PathLike[str] | None = None) -> grpc.ChannelCredentials:
    """TLS credentials trusting `ca_file` (PEM), or gRPC's default roots when it is None."""
    roots = None
    if ca_file is not None:
        with open(ca_file, "rb") as pem:
            roots = pem.read()
    return grpc.ssl_channel_credentials(root_certificates=roots)


def raw_format(config: transcribe_pb2.StreamingConfig) -> RawFormat | None:
    """The raw format of a config's audio (bytes map to time), or None for containerised."""
    width = _SAMPLE_WIDTHS.get(config.encoding)
    if width is None or config.sample_rate <= 0:
        return None
    return RawFormat(config.sample_rate, config.channels or 1, width)


def error_from_status(code: grpc.StatusCode, details: str, status_details: bytes | None) -> TranscribeError:
    """The error for a call that ended with `code`, from its `grpc-status-details-bin` bytes."""
    resume_point, reason = None, ""
    if status_details:
        status = status_pb2.Status.FromString(status_details)
        detail: any_pb2.Any
        for detail in status.details:
            point = transcribe_pb2.ResumePoint()
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(point):
                resume_point = point
            elif detail.Unpack(info):
                reason = info.reason
    return TranscribeError(code, details, resume_point, reason)


def _error(code: Any, details: Any, trailing: Any) -> TranscribeError:
    status_code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    raw = next(
        (v for k, v in trailing or () if k == _STATUS_DETAILS_KEY and isinstance(v, bytes)),
        None,
    )
    return error_from_status(status_code, str(details or ""), raw)


class _Audio:
    """The application's audio and controls, pumped into the bounded buffers the calls read.

    Controls sit at the byte position of the audio they follow (`ControlLog`); each call sends
    them there, in order with the audio, and a resume sends a kept Finalize again at its place.
    """

    def __init__(self, fmt: RawFormat | None, max_bytes: int, frame_bytes: int) -> None:
        if max_bytes < frame_bytes:
            raise ValueError(f"max_buffer_bytes ({max_bytes}) must hold a sample frame ({frame_bytes} bytes)")
        self.fmt = fmt  # None: nothing is resumed, nothing kept once sent
        self.frame_bytes = frame_bytes
        # Pieces leave room for a frame cut short that waits unsent for its rest.
        self.piece_bytes = max_bytes - frame_bytes + 1
        self.buffer = AudioBuffer(max_bytes)
        self.controls: ControlLog[transcribe_pb2.Control] = ControlLog()
        self.sent_to = 0  # one past the last byte written on any call
        self.changed = asyncio.Condition()
        self.failure: Exception | None = None

    async def pump(self, source: AsyncIterable[AudioItem] | Iterable[AudioItem]) -> None:
        try:
            async for item in _items(source):
                if isinstance(item, transcribe_pb2.Control):
                    await self._put_control(item)
                    continue
                for start in range(0, len(item), self.piece_bytes):
                    await self._put(item[start : start + self.piece_bytes])
        except Exception as exc:  # raised to the application after the results of what was sent
            self.failure = exc
        finally:
            async with self.changed:
                self.buffer.ended = True
                self.changed.notify_all()

    async def _put(self, piece: bytes) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.buffer.room(self.sent_to) >= len(piece))
            self.buffer.append(piece, self.sent_to)
            self.changed.notify_all()

    async def _put_control(self, control: transcribe_pb2.Control) -> None:
        resend = self.fmt is not None and kept_for_resend(control.WhichOneof("command"))
        async with self.changed:
            await self.changed.wait_for(self.controls.room)
            self.controls.add(self.buffer.end, control, resend=resend)
            self.changed.notify_all()

    async def requests_from(
        self, position: int, seq: int, paused: asyncio.Event
    ) -> AsyncIterator[bytes | transcribe_pb2.Control]:
        """The kept audio and controls from `position` (and control `seq`) on, then new ones
        as they come, until the audio ends."""
        while True:
            async with self.changed:
                await self.changed.wait_for(partial(self._readable, position, seq, paused))
                if paused.is_set():
                    break
                control = self.controls.next_from(seq)
                item: bytes | transcribe_pb2.Control
                if control is not None and control.position <= position:
                    seq = control.seq + 1
                    self.controls.sent(control)
                    item = control.control
                else:
                    item = self.buffer.read(position, self._until(position, control) - position)
                    if not item:
                        return  # the audio ended
                    position += len(item)
                    self.sent_to = max(self.sent_to, position)
                    if self.fmt is None:
                        self.buffer.drop_before(position)  # nothing to resend: keep nothing
                self.changed.notify_all()
            yield item
        await asyncio.Event().wait()  # going away: write nothing more; the call's end stops this

    def _until(self, position: int, control: PlacedControl[transcribe_pb2.Control] | None) -> int:
        return send_until(
            position,
            self.buffer.end,
            self.frame_bytes,
            _MAX_CHUNK_BYTES,
            ended=self.buffer.ended,
            control_at=None if control is None else control.position,
        )

    def _readable(self, position: int, seq: int, paused: asyncio.Event) -> bool:
        control = self.controls.next_from(seq)
        return (
            paused.is_set()
            or self.buffer.ended
            or (control is not None and control.position <= position)
            or self._until(position, control) > position
        )

    async def commit(self, position: int) -> None:
        """Final results cover the audio before `position`: it and its controls go."""
        async with self.changed:
            self.buffer.drop_before(position)
            self.controls.commit(position)
            self.changed.notify_all()

    async def rewind(self, position: int) -> int:
        """The next call resends from `position`; returns its first control's seq."""
        async with self.changed:
            self.buffer.drop_before(position)
            seq = self.controls.rewind(position)
            # The bound counts as sent only what the next call has sent: kept bytes stay
            # until it has resent them.
            self.sent_to = position
            self.changed.notify_all()
            return seq


async def _items(source: AsyncIterable[AudioItem] | Iterable[AudioItem]) -> AsyncIterator[AudioItem]:
    """The application's items, checked: non-empty bytes-like audio, or Control messages."""
    async for item in _aiter(source):
        if isinstance(item, transcribe_pb2.Control):
            yield item
        elif isinstance(item, bytes | bytearray | memoryview):
            if item:
                yield bytes(item)
        else:
            raise TypeError(f"audio items are bytes or transcribe_pb2.Control, not {type(item).__name__}")


async def _aiter(source: AsyncIterable[AudioItem] | Iterable[AudioItem]) -> AsyncIterator[AudioItem]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


def finalize(channel: int | None = None) -> transcribe_pb2.Control:
    """A `Finalize` control, to put among the audio: the results of the audio before it come
    back final, marked `from_finalize` (of one channel only, if `channel` is given)."""
    command = transcribe_pb2.Finalize() if channel is None else transcribe_pb2.Finalize(channel=channel)
    return transcribe_pb2.Control(finalize=command)


def keep_alive() -> transcribe_pb2.Control:
    """A `KeepAlive` control. Accepted for compatibility: the gateway keeps its upstream alive
    during silence by itself, so an application never needs one."""
    return transcribe_pb2.Control(keep_alive=transcribe_pb2.KeepAlive())


async def transcribe(
    addr: str,
    audio: AsyncIterable[AudioItem] | Iterable[AudioItem],
    config: transcribe_pb2.StreamingConfig | None = None,
    *,
    token: str | None = None,
    tls: bool = False,
    ca_file: str | os.PathLike[str] | None = None,
    metadata: Metadata = (),
    deadline: float | None = None,
    channel_options: Sequence[tuple[str, Any]] = (),
    resume: Resume | bool = True,
    on_resume: Callable[[ResumeEvent], None] | None = None,
) -> AsyncIterator[transcribe_pb2.StreamTranscribeResponse]:
    """Transcribes `audio` through the gateway at `addr` and yields every response.

    `audio` is sent as it is produced: pace it (`transcribe_client.audio.pace`) for live
    behaviour. When it ends the request stream is half-closed and the remaining results and the
    `summary` follow. If `audio` raises, the stream is half-closed there too, and its exception
    is raised once the gateway has sent the results for the audio it got.

    `audio` yields `bytes`, and may yield `transcribe_pb2.Control` messages among them
    (`finalize()`, `keep_alive()`): each is sent after the audio yielded before it and before
    the audio after it. A resume resends a Finalize that lies in the audio it resends at the
    same place; controls before the resend point go with their audio, and KeepAlives are
    never resent.

    Resume (`resume=True` or a `Resume`; `False` turns it off) needs raw audio (`linear16`,
    `linear32`, `mulaw`, `alaw` with a sample rate): for containerised audio the error is raised.
    Across a resume the application sees the first call's `session_started`, every result and
    event of every call (the `upstream_event.going_away` of a draining replica included), and
    the last call's `summary` only; `on_resume` is told before each new call.

    The audio of each call waits for its `session_started`: a config the gateway rejects then
    ends the call before any audio is written. (grpc.aio reports a write that races with the end
    of the call as `INTERNAL: Internal error from Core` instead of the server's status,
    grpc/grpc#36066; waiting avoids that race before the session opens, and after
    `going_away` the library writes nothing more for the same reason.)

    `deadline` is each call's gRPC timeout in seconds. Raises `TranscribeError`.
    """
    config = config if config is not None else transcribe_pb2.StreamingConfig()
    options = resume if isinstance(resume, Resume) else Resume(enabled=resume)
    raw = raw_format(config)
    fmt = raw if options.enabled else None
    feed = _Audio(fmt, options.max_buffer_bytes, raw.frame_bytes if raw is not None else 1)
    if tls or ca_file is not None:
        channel = grpc.aio.secure_channel(addr, channel_credentials(ca_file), channel_options)
    else:
        channel = grpc.aio.insecure_channel(addr, channel_options)
    async with channel, _background(feed.pump(audio)):
        stub = transcribe_pb2_grpc.TranscribeServiceStub(channel)
        start_byte, start_seq, offset = 0, 0, config.start_offset_seconds
        attempt, opened_once = 0, False
        while True:
            call_config = transcribe_pb2.StreamingConfig()
            call_config.CopyFrom(config)
            call_config.start_offset_seconds = offset
            opened, paused = asyncio.Event(), asyncio.Event()
            delivered: list[float] = [offset] * max(config.channels, 1)
            progressed = False
            summary: transcribe_pb2.StreamTranscribeResponse | None = None

            async def requests(
                first: transcribe_pb2.StreamingConfig = call_config,
                position: int = start_byte,
                seq: int = start_seq,
                opened: asyncio.Event = opened,
                paused: asyncio.Event = paused,
            ) -> AsyncIterator[transcribe_pb2.StreamTranscribeRequest]:
                yield transcribe_pb2.StreamTranscribeRequest(config=first)
                await opened.wait()
                async for item in feed.requests_from(position, seq, paused):
                    if isinstance(item, bytes):
                        yield transcribe_pb2.StreamTranscribeRequest(audio=item)
                    else:
                        yield transcribe_pb2.StreamTranscribeRequest(control=item)

            call = stub.StreamTranscribe(
                requests(), metadata=call_metadata(token, metadata), timeout=deadline
            )
            try:
                async for response in call:
                    kind = response.WhichOneof("response")
                    if kind == "session_started":
                        opened.set()
                        if opened_once:
                            continue
                        opened_once = True
                    elif kind == "summary":
                        summary = response  # yielded only if this call is the last
                        continue
                    elif kind == "upstream_event" and response.upstream_event.HasField("going_away"):
                        paused.set()
                    elif kind == "result" and response.result.is_final and fmt is not None:
                        channel_index = response.result.channel_index
                        if channel_index < len(delivered):
                            end = response.result.start_seconds + response.result.duration_seconds
                            delivered[channel_index] = max(delivered[channel_index], end)
                            await feed.commit(commit_byte(fmt, start_byte, offset, min(delivered)))
                        progressed = True
                    yield response
            except grpc.aio.AioRpcError as exc:
                paused.set()  # before any await: this call's writer must not take from the next
                error = _error(exc.code(), exc.details(), exc.trailing_metadata())
                if fmt is None or error.code != grpc.StatusCode.UNAVAILABLE:
                    raise error from exc
                point = error.resume_point
                if point is not None:
                    plan = plan_resume(
                        fmt, start_byte, point.committed_seconds, point.committed_bytes, feed.buffer.kept_from
                    )
                    if plan is None:
                        raise error from exc
                    next_byte, next_offset = plan.resend_from_byte, plan.start_offset_seconds
                elif attempt > 0 and not opened.is_set():
                    next_byte, next_offset = start_byte, offset  # refused (a draining replica): again
                else:
                    raise error from exc
                attempt = 1 if progressed else attempt + 1
                if attempt > options.max_attempts:
                    raise error from exc
                delay = backoff_s(attempt, options.initial_backoff_s, options.max_backoff_s)
                resend_bytes = feed.sent_to - next_byte
                start_seq = await feed.rewind(next_byte)
                if on_resume is not None:
                    on_resume(ResumeEvent(attempt, error, next_offset, resend_bytes, delay))
                start_byte, offset = next_byte, next_offset
                await asyncio.sleep(delay)
                continue
            finally:
                opened.set()
                paused.set()
                call.cancel()  # a no-op once the call has ended
            if summary is not None:
                yield summary
            break
        if feed.failure is not None:
            raise feed.failure


@contextlib.asynccontextmanager
async def _background(work: Any) -> AsyncIterator[None]:
    task = asyncio.ensure_future(work)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def transcribe_sync(
    addr: str,
    audio: Iterable[AudioItem],
    config: transcribe_pb2.StreamingConfig | None = None,
    **options: Any,
) -> Generator[transcribe_pb2.StreamTranscribeResponse, None, None]:
    """The blocking twin of `transcribe` (same keyword arguments), resume and controls included.

    The call runs on a private event loop in a daemon thread (`on_resume` is called there);
    `audio` is read on another daemon thread, so a blocking source (a microphone read) blocks
    neither. Close the generator (or use `contextlib.closing`) if you stop iterating early:
    that cancels the call. A source blocked in a read when the call ends keeps its thread
    until that read returns; the thread then stops without reading more.
    """
    # Bounded by `slots`: at most _SYNC_READ_AHEAD responses, then one end item.
    handoff: queue.Queue[Any] = queue.Queue()
    done = object()
    state: dict[str, Any] = {}
    started = threading.Event()

    async def run() -> None:
        slots = asyncio.Semaphore(_SYNC_READ_AHEAD)  # responses handed over but not yet taken
        state["loop"], state["task"], state["slots"] = (
            asyncio.get_running_loop(),
            asyncio.current_task(),
            slots,
        )
        started.set()
        try:
            async for response in transcribe(addr, audio_io.thread_chunks(audio), config, **options):
                await slots.acquire()
                handoff.put(response)
        except BaseException as exc:  # handed to the caller's thread and raised there
            handoff.put(exc)
        else:
            handoff.put(done)

    def serve() -> None:
        # The coroutine is made here, in the loop's own thread: one made by the caller and never
        # awaited (a thread that fails to start) would be reported as "never awaited".
        asyncio.run(run())

    thread = threading.Thread(target=serve, name="transcribe", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, asyncio.CancelledError):
                # Only the caller cancels (below, once it has stopped reading): this one is not
                # its own, and ending quietly would pass a cut transcript off as whole.
                raise TranscribeError(grpc.StatusCode.CANCELLED, "the call was cancelled") from item
            if isinstance(item, BaseException):
                raise item
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to send
                state["loop"].call_soon_threadsafe(state["slots"].release)
            yield item
    finally:
        # Waits for the loop to exist (a KeyboardInterrupt can come before it does), then
        # cancels the call and lets the loop close, so no loop outlives the caller's reading.
        while not started.wait(0.1) and thread.is_alive():
            pass
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop has just closed
                state["loop"].call_soon_threadsafe(state["task"].cancel)
            thread.join(timeout=_SYNC_JOIN_TIMEOUT_S)
