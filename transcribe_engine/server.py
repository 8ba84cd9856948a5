"""The embedded engine's websocket server: Deepgram's live ``/v1/listen`` on a local recogniser.

I/O only: the handshake decisions, options, messages and endpointing come from ``protocol`` and
``segmenter``; this module owns the sockets, the per-stream tasks and the decode pool.

One stream::

    reader ──bytes──> AudioDecoder ──16 kHz──> per channel: VAD -> Segmenter -> jobs
                                                              │
    sender <──JSON── outbox <── channel worker <── DecodePool (threads, finals first)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import heapq
import itertools
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from transcribe_engine import protocol
from transcribe_engine.audio import (
    SAMPLE_RATE,
    AudioDecoder,
    RawDecoder,
    Samples,
    SniffingDecoder,
)
from transcribe_engine.config import EngineConfig
from transcribe_engine.numbers import spell_numbers
from transcribe_engine.protocol import (
    CloseCode,
    HandshakeError,
    ListenOptions,
    ModelInfo,
    ResultWindow,
    Word,
)
from transcribe_engine.recognizer import (
    ChannelRecognizer,
    Recognizer,
    RecognizerSettings,
    load_recognizer,
)
from transcribe_engine.segmenter import (
    Event,
    Segmenter,
    SegmenterSettings,
    SpeechStarted,
    UtteranceEnd,
    Window,
)
from transcribe_engine.vad import StreamingVad, load_vad_session

logger = logging.getLogger(__name__)

T = TypeVar("T")

_OUTBOX_SIZE: Final = 4096
_DRAIN_TIMEOUT_S: Final = 2.0  # a container decoder that cannot catch up within this is stuck
_FLUSH_TIMEOUT_S: Final = 10.0
_CALIBRATION_AUDIO_S: Final = 4.0
_AVERAGE_SEGMENT_S: Final = 4.0  # typical speech segment between endpoints, for the load model
_LOAD_BUDGET: Final = 0.6  # measured: the bench's real-time limit sat ~25 % below 0.75
# Whisper turns a breath or a click into "Thank you."; such a final is reported empty (interims
# have their own, higher bar in the segmenter).
_MIN_FINAL_SPEECH_S: Final = 0.25
_LEFT_CONTEXT_S: Final = 1.0
# Per stream, whatever the client sends: audio queued for final decodes (beyond it the reader
# stops reading, so TCP pushes back), and bytes waiting for the container decoder.
_MAX_BACKLOG_S: Final = 30.0
_MAX_UNDECODED_BYTES: Final = 1024 * 1024  # share of the decode workers admission may plan to use


class DecodePool:
    """Runs blocking decodes on a few threads; queued finals always go before interims."""

    FINAL: Final = 0
    INTERIM: Final = 1

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine-decode")
        self._free = workers
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def run(self, priority: int, fn: Callable[[], T]) -> T:
        await self._acquire(priority)
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn)
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # granted just as we were cancelled: pass the slot on
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class Capacity:
    """Measured decode costs (seconds of one worker) and what admission derives from them."""

    final_decode_s: float
    interim_decode_s: float
    budget: float  # worker-seconds per second admission may hand out

    def stream_load(self, options: ListenOptions, interim_period_s: float) -> float:
        per_channel = self.final_decode_s / _AVERAGE_SEGMENT_S
        if options.interim_results:
            # Interims are coalesced under load; plan for one every other period.
            per_channel += self.interim_decode_s / (2 * interim_period_s)
        return per_channel * options.output_channels

    def streams(self, interim_period_s: float, *, interim_results: bool = True) -> int:
        load = self.stream_load(ListenOptions(interim_results=interim_results), interim_period_s)
        return max(1, int(self.budget / load))


@dataclass(slots=True)
class _Admission:
    options: ListenOptions
    request_id: str
    load: float


class EngineServer:
    """Serve ``/v1/listen`` on ``config.host:config.port`` until the context exits."""

    def __init__(self, config: EngineConfig, *, sock: socket.socket | None = None) -> None:
        self._config = config
        # A supervisor may own the listening socket, so it outlives restarts of this process.
        self._sock = sock
        self._recognizer: Recognizer | None = None
        self._vad_session: Any = None
        self._pool: DecodePool | None = None
        self._server: Server | None = None
        self._capacity: Capacity | None = None
        self._pending: dict[ServerConnection, _Admission] = {}
        self._active_load = 0.0
        self._active_streams = 0
        self._streams: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def capacity(self) -> Capacity | None:
        return self._capacity

    @property
    def max_streams(self) -> int:
        """Concurrent real-time streams admitted (with interim results, one channel)."""
        if self._config.max_streams is not None:
            return self._config.max_streams
        assert self._capacity is not None
        return self._capacity.streams(self._config.interim_period_s)

    @property
    def active_streams(self) -> int:
        return self._active_streams

    @property
    def model_info(self) -> ModelInfo:
        assert self._recognizer is not None
        return self._recognizer.model_info

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the engine is not serving")
        host, port = self._server.sockets[0].getsockname()[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{port}{protocol.LISTEN_PATH}"

    async def __aenter__(self) -> EngineServer:
        try:
            return await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def _start(self) -> EngineServer:
        config = self._config
        settings = RecognizerSettings(
            cpu_threads=config.cpu_threads,
            decode_workers=config.decode_workers,
            beam_size_final=config.beam_size_final,
            beam_size_interim=config.beam_size_interim,
        )
        # Loading the model and the VAD takes a while and blocks; keep the loop responsive.
        self._recognizer = await asyncio.to_thread(
            load_recognizer, config.recognizer, model_dir=config.model_dir, settings=settings
        )
        self._vad_session = await asyncio.to_thread(load_vad_session)
        self._pool = DecodePool(config.decode_workers)
        # A fixed stream cap needs no load model; skipping calibration saves seconds at start.
        if config.max_streams is None:
            self._capacity = await self._calibrate()
        where: dict[str, Any] = (
            {"sock": self._sock} if self._sock is not None else {"host": config.host, "port": config.port}
        )
        self._server = await serve(
            self._handle,
            **where,
            process_request=self._process_request,
            process_response=self._process_response,
            select_subprotocol=self._select_subprotocol,
            server_header=None,
            max_size=2**22,
            ping_interval=None,  # Deepgram relies on its own idle rule, not pings
        )
        logger.info(
            "engine ready: %s recognizer=%s model=%s max_streams=%d",
            self.url,
            config.recognizer,
            self.model_info.name,
            self.max_streams,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None
        for task in list(self._streams):
            task.cancel()
        if self._streams:
            await asyncio.gather(*self._streams, return_exceptions=True)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown)
            self._pool = None

    async def serve_forever(self) -> None:
        if self._server is None:
            raise RuntimeError("use 'async with EngineServer(config)' first")
        await self._server.serve_forever()

    async def _calibrate(self) -> Capacity:
        """Time interim and final decodes of real speech on this machine, alone and in parallel.

        Parallel decodes scale poorly here (two workers on two cores give ~1.3x, not 2x), so the
        budget is the measured speed-up, not the worker count.
        """
        assert self._recognizer is not None and self._pool is not None
        pool = self._pool
        audio = _calibration_audio()
        workers = self._config.decode_workers
        channels = [self._recognizer.open_channel("en") for _ in range(workers)]

        def decode(index: int, *, final: bool) -> Callable[[], list[Word]]:
            return functools.partial(channels[index].decode, audio, segment_id=index, final=final)

        try:
            # The first calls pay one-off set-up costs; do not count them.
            for final in (True, False):
                await pool.run(DecodePool.FINAL, decode(0, final=final))
            # Short decodes time noisily; two rounds, keeping the pessimistic figures.
            interim = final_s = 0.0
            speedup = float(workers)
            for _ in range(2):
                start = time.perf_counter()
                await pool.run(DecodePool.INTERIM, decode(0, final=False))
                interim = max(interim, time.perf_counter() - start)
                start = time.perf_counter()
                await pool.run(DecodePool.FINAL, decode(0, final=True))
                final_round = time.perf_counter() - start
                final_s = max(final_s, final_round)
                start = time.perf_counter()
                await asyncio.gather(
                    *(pool.run(DecodePool.FINAL, decode(i, final=True)) for i in range(workers))
                )
                speedup = min(speedup, workers * final_round / (time.perf_counter() - start))
        finally:
            for channel in channels:
                channel.close()
        capacity = Capacity(
            final_decode_s=final_s, interim_decode_s=interim, budget=max(1.0, speedup) * _LOAD_BUDGET
        )
        logger.info(
            "engine calibration: final decode %.3f s, interim decode %.3f s per %.0f s of speech, "
            "%d parallel decodes %.2fx",
            final_s,
            interim,
            _CALIBRATION_AUDIO_S,
            workers,
            speedup,
        )
        return capacity

    # ---- handshake ----

    def _select_subprotocol(
        self, connection: ServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        chosen = protocol.select_subprotocol(subprotocols)
        return Subprotocol(chosen) if chosen is not None else None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        request_id = protocol.new_request_id()
        target = urlsplit(request.path)
        if target.path == protocol.HEALTH_PATH:
            # For a supervisor's probe: answered from the event loop, so it also proves the
            # loop is not stuck.
            return connection.respond(HTTPStatus.OK, "OK\n")
        if target.path.rstrip("/") != protocol.LISTEN_PATH:
            return _reject(connection, protocol.NOT_FOUND, request_id)
        offered = protocol.header_values(request.headers.get_all("Sec-WebSocket-Protocol"))
        credentials = protocol.parse_credentials(request.headers.get("Authorization"), offered)
        if not protocol.is_authorized(self._config.api_key, credentials):
            return _reject(connection, protocol.INVALID_AUTH, request_id)
        try:
            options = protocol.parse_options(target.query)
        except protocol.OptionsError as exc:
            return _reject(connection, protocol.bad_request(str(exc)), request_id)
        assert self._recognizer is not None
        if self._recognizer.english_only and not _is_english(options.language):
            return _reject(
                connection,
                protocol.bad_request("No such model/language/tier combination found."),
                request_id,
            )
        load = (
            self._capacity.stream_load(options, self._config.interim_period_s)
            if self._capacity is not None
            else 1.0
        )
        if not self._admit(load):
            return _reject(connection, protocol.too_many_requests(self.max_streams), request_id)
        self._pending[connection] = _Admission(options, request_id, load)
        self._active_load += load
        self._active_streams += 1
        self._idle.clear()
        return None

    def _admit(self, load: float) -> bool:
        if self._config.max_streams is not None:
            return self._active_streams < self._config.max_streams
        assert self._capacity is not None
        # One stream is always admitted, however heavy; beyond that the budget decides.
        return self._active_streams == 0 or self._active_load + load <= self._capacity.budget

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        admission = self._pending.get(connection)
        if admission is not None:
            response.headers["dg-request-id"] = admission.request_id
            if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
                self._release(self._pending.pop(connection))
        return None

    def _release(self, admission: _Admission) -> None:
        self._active_load = max(0.0, self._active_load - admission.load)
        self._active_streams -= 1
        if self._active_streams == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no stream is open or being opened (for draining and tests)."""
        await self._idle.wait()

    async def _handle(self, connection: ServerConnection) -> None:
        admission = self._pending.pop(connection)
        assert self._recognizer is not None and self._pool is not None
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            stream = _Stream(
                connection,
                admission.options,
                admission.request_id,
                config=self._config,
                recognizer=self._recognizer,
                vad_session=self._vad_session,
                pool=self._pool,
            )
            await stream.run()
        finally:
            self._streams.discard(task)
            self._release(admission)


def _is_english(language: str) -> bool:
    return language.lower().split("-")[0] == "en"


def _reject(connection: ServerConnection, error: HandshakeError, request_id: str) -> Response:
    response = connection.respond(error.status, error.body(request_id))
    headers = Headers((name, value) for name, value in response.headers.raw_items() if name != "Content-Type")
    headers["Content-Type"] = "application/json"
    headers["dg-request-id"] = request_id
    headers["dg-error"] = error.err_msg
    return Response(response.status_code, response.reason_phrase, headers, response.body)


def _calibration_audio() -> Samples:
    import wave

    # TODO(engine): the engine must not read the gateway's files; admission is being reworked.
    path = Path(__file__).resolve().parent.parent / "gateway" / "samples" / "hello.wav"
    with wave.open(str(path)) as clip:
        frames = clip.readframes(int(_CALIBRATION_AUDIO_S * clip.getframerate()))
    return (np.frombuffer(frames, "<i2").astype(np.float32) / 32768.0).astype(np.float32)


class _AudioBuffer:
    """One channel's 16 kHz audio from ``start`` onwards; older audio is dropped."""

    def __init__(self) -> None:
        self._chunks: list[Samples] = []
        self._start = 0  # absolute sample index of the first kept sample
        self._total = 0

    @property
    def total(self) -> int:
        return self._total

    @property
    def first(self) -> int:
        """Absolute index of the oldest sample still kept."""
        return self._start

    def append(self, samples: Samples) -> None:
        if len(samples):
            self._chunks.append(samples)
            self._total += len(samples)

    def slice(self, start: int, end: int) -> Samples:
        data = np.concatenate(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        self._chunks = [data] if len(data) else []
        lo = max(0, start - self._start)
        hi = max(lo, end - self._start)
        return data[lo:hi].copy()

    def trim(self, before: int) -> None:
        if before <= self._start or not self._chunks:
            return
        data = np.concatenate(self._chunks)
        drop = min(len(data), before - self._start)
        self._chunks = [data[drop:]] if len(data) > drop else []
        self._start += drop


@dataclass(frozen=True, slots=True)
class _Job:
    window: Window
    audio: Samples
    audio_start: float  # stream time of audio[0]


class _Channel:
    """VAD, segmenter, recogniser and the worker that turns windows into Results."""

    def __init__(
        self,
        index: int,
        stream: _Stream,
        recognizer: ChannelRecognizer,
        vad: StreamingVad,
        settings: SegmenterSettings,
    ) -> None:
        self.index = index
        self._stream = stream
        self._recognizer = recognizer
        self._vad = vad
        self.segmenter = Segmenter(settings)
        self.audio = _AudioBuffer()
        self._finals: deque[_Job] = deque()
        self._interim: _Job | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._segment_id = 0  # of the window currently open
        self._backlog = 0  # samples in queued final jobs
        self._room = asyncio.Event()  # set while the backlog is within its bound
        self._room.set()

    async def wait_for_room(self) -> None:
        await self._room.wait()

    def _note_backlog(self, delta: int) -> None:
        self._backlog += delta
        if self._backlog > _MAX_BACKLOG_S * SAMPLE_RATE:
            self._room.clear()
        else:
            self._room.set()

    def push(self, samples: Samples) -> None:
        self.audio.append(samples)
        self._handle(self.segmenter.advance(self._vad.push(samples)))
        # Keep a little before the open window for the next decode; drop the rest.
        self.audio.trim(int((self.segmenter.keep_from - _LEFT_CONTEXT_S) * SAMPLE_RATE) - SAMPLE_RATE)

    def finalize(self, *, from_finalize: bool) -> None:
        window = self.segmenter.finalize(self.audio.total)
        if window is not None:
            if not from_finalize:
                window = dataclasses.replace(window, from_finalize=False)
            self._handle([window])

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Window):
                job = self._job(event)
                if event.is_final:
                    self._finals.append(job)
                    self._note_backlog(len(job.audio))
                    self._interim = None
                else:
                    self._interim = job  # an older pending interim is superseded
                self._wake.set()
            elif isinstance(event, SpeechStarted):
                self._stream.on_speech_started(self.index, event.timestamp)
            elif isinstance(event, UtteranceEnd):
                self._stream.on_utterance_end(self.index, event.last_word_end)

    def _job(self, window: Window) -> _Job:
        if not window.has_speech:
            return _Job(window, np.zeros(0, np.float32), window.audio_start)
        # Whisper hallucinates on a lone short word cut at its onset; a second of the audio
        # before the window gives it context, and words from there are dropped again.
        start = max(round((window.audio_start - _LEFT_CONTEXT_S) * SAMPLE_RATE), self.audio.first)
        end = round(window.end * SAMPLE_RATE)
        return _Job(window, self.audio.slice(start, end), start / SAMPLE_RATE)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._finals or self._interim is not None:
                if self._finals:
                    job = self._finals.popleft()
                    words = await self._decode(job, final=True)
                    self._note_backlog(-len(job.audio))
                    self._stream.send_result(self.index, job.window, words)
                    if words:
                        self._handle(self.segmenter.note_final_words(words[-1].end))
                else:
                    assert self._interim is not None
                    job, self._interim = self._interim, None
                    words = await self._decode(job, final=False)
                    # A final for this window may have been queued while decoding.
                    if not self._finals and job.window.segment_id == self.segmenter.segment_id:
                        self._stream.send_result(self.index, job.window, words)
            if self._closing:
                return

    async def _decode(self, job: _Job, *, final: bool) -> list[Word]:
        window = job.window
        if not window.has_speech or len(job.audio) == 0:
            return []
        if final and window.speech_s < _MIN_FINAL_SPEECH_S:
            return []
        priority = DecodePool.FINAL if final else DecodePool.INTERIM
        recognizer = self._recognizer
        audio = job.audio
        words = await self._stream.pool.run(
            priority,
            lambda: recognizer.decode(audio, segment_id=window.segment_id, final=final),
        )
        return _place_words(words, window, job.audio_start)

    def release(self) -> None:
        self._recognizer.close()


def _place_words(words: list[Word], window: Window, offset: float) -> list[Word]:
    """Shift decoder times to stream times; keep the window's own words, inside the window."""
    placed: list[Word] = []
    for word in words:
        start, end = offset + word.start, offset + word.end
        if (start + end) / 2 < window.start or not protocol.has_letters(word.text):
            continue  # context from the previous window, or punctuation on its own
        start = min(max(start, window.start), window.end)
        end = min(max(end, start), window.end)
        placed.append(Word(word.text, start, end, word.confidence))
    return placed


class _Stream:
    """One accepted websocket: read, decode, answer, close with Deepgram's codes."""

    def __init__(
        self,
        connection: ServerConnection,
        options: ListenOptions,
        request_id: str,
        *,
        config: EngineConfig,
        recognizer: Recognizer,
        vad_session: Any,
        pool: DecodePool,
    ) -> None:
        self._connection = connection
        self._options = options
        self._request_id = request_id
        self._config = config
        self._model = recognizer.model_info
        self.pool = pool
        self._created = datetime.now(UTC)
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(_OUTBOX_SIZE)
        self._loop = asyncio.get_running_loop()
        self._error_close: asyncio.Task[None] | None = None
        self._log = logging.LoggerAdapter(logger, {"request_id": request_id})
        settings = SegmenterSettings(
            endpointing_ms=options.endpointing_ms,
            min_endpointing_ms=config.min_endpointing_ms,
            interim_period_s=config.interim_period_s if options.interim_results else None,
            soft_max_segment_s=config.soft_max_segment_s,
            hard_max_segment_s=config.hard_max_segment_s,
            utterance_end_ms=options.utterance_end_ms if options.interim_results else None,
        )
        self._channels = [
            _Channel(
                i,
                self,
                recognizer.open_channel(options.language),
                StreamingVad(vad_session),
                settings,
            )
            for i in range(options.output_channels)
        ]
        split = options.multichannel
        self._decoder: AudioDecoder
        if options.is_raw:
            assert options.encoding is not None and options.sample_rate is not None
            self._decoder = RawDecoder(
                options.encoding,
                options.sample_rate,
                options.channels,
                split=split,
                sink=self._on_audio,
            )
        else:
            # Containers report their own channel count; results stay on one channel.
            self._decoder = SniffingDecoder(
                split=False, sink=self._on_audio_threadsafe, on_error=self._on_error_threadsafe
            )

    # ---- audio in ----

    def _on_audio(self, planes: list[Samples]) -> None:
        for channel, samples in zip(self._channels, planes, strict=False):
            channel.push(samples)

    def _on_audio_threadsafe(self, planes: list[Samples]) -> None:
        # The decoder thread may still deliver while the engine shuts its loop down.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_audio, planes)

    def _on_error_threadsafe(self, exc: Exception) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_decode_error, exc)

    def _on_decode_error(self, exc: Exception) -> None:
        self._log.info("undecodable audio: %s", exc)
        self._abort(CloseCode.POLICY_VIOLATION, protocol.DATA0000_REASON)

    def _abort(self, code: CloseCode, reason: str) -> None:
        """Close from a callback; the reader sees the close and the stream ends."""
        if self._error_close is None:
            self._error_close = asyncio.ensure_future(self._connection.close(code, reason))

    # ---- messages out ----

    def _post(self, message: dict[str, Any]) -> None:
        try:
            self._outbox.put_nowait(protocol.encode(message))
        except asyncio.QueueFull:
            # The client stopped reading; dropping silently would corrupt its transcript.
            self._log.warning("client is not reading results; closing")
            self._abort(CloseCode.INTERNAL_ERROR, "The client did not read results in time.")

    def send_result(self, channel: int, window: Window, words: list[Word]) -> None:
        if not self._options.digits:
            words = spell_numbers(words)
        result = ResultWindow(
            channel=channel,
            channels=len(self._channels),
            start=window.start,
            end=window.end,
            is_final=window.is_final,
            speech_final=window.speech_final,
            from_finalize=window.from_finalize,
            words=tuple(words),
        )
        self._post(
            protocol.results_message(
                result, options=self._options, request_id=self._request_id, model=self._model
            )
        )

    def on_speech_started(self, channel: int, timestamp: float) -> None:
        if self._options.vad_events:
            self._post(protocol.speech_started_message(channel, len(self._channels), timestamp))

    def on_utterance_end(self, channel: int, last_word_end: float) -> None:
        self._post(protocol.utterance_end_message(channel, len(self._channels), last_word_end))

    def _metadata(self) -> dict[str, Any]:
        duration = max((c.audio.total for c in self._channels), default=0) / SAMPLE_RATE
        return protocol.metadata_message(
            options=self._options,
            request_id=self._request_id,
            created=self._created,
            duration_s=duration,
            model=self._model,
        )

    async def _send_loop(self) -> None:
        while (text := await self._outbox.get()) is not None:
            await self._connection.send(text)

    # ---- lifecycle ----

    async def run(self) -> None:
        self._log.info("stream open: %s", _describe(self._options))
        sender = asyncio.create_task(self._send_loop())
        workers = [asyncio.create_task(c.run()) for c in self._channels]
        outcome = "client closed"
        try:
            outcome = await self._read()
            if outcome == "close stream":
                await self._flush(workers, from_finalize=False)
                self._post(self._metadata())
                await self._finish_sender(sender)
                await self._connection.close(CloseCode.NORMAL)
            elif outcome == "idle":
                self._post(self._metadata())
                await self._finish_sender(sender)
                await self._connection.close(CloseCode.INTERNAL_ERROR, protocol.NET0001_REASON)
        except ConnectionClosed:
            outcome = "client closed"
        finally:
            self._decoder.close()
            for task in (sender, *workers):
                task.cancel()
            await asyncio.gather(sender, *workers, return_exceptions=True)
            if self._error_close is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._error_close
                outcome = "aborted"
            for channel in self._channels:
                channel.release()
            self._log.info("stream closed (%s) after %.2f s of audio", outcome, self._metadata()["duration"])

    async def _finish_sender(self, sender: asyncio.Task[None]) -> None:
        await self._outbox.put(None)
        await sender

    async def _read(self) -> str:
        timeout = self._config.idle_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(self._connection.recv(), timeout)
            except TimeoutError:
                return "idle"
            if isinstance(message, bytes):
                # Empty frames were once Deepgram's end-of-stream; they only count as activity.
                if message:
                    for channel in self._channels:
                        await channel.wait_for_room()
                    self._decoder.feed(message)
                    # Checked without waiting first: a thread hop per message costs more.
                    if not self._decoder.wait_below(_MAX_UNDECODED_BYTES, 0) and not await asyncio.to_thread(
                        self._decoder.wait_below, _MAX_UNDECODED_BYTES, _DRAIN_TIMEOUT_S
                    ):
                        self._log.info("the audio decoder cannot keep up; closing")
                        self._abort(CloseCode.POLICY_VIOLATION, protocol.DATA0000_REASON)
                continue
            control = protocol.parse_control(message)
            if isinstance(control, protocol.CloseStream):
                return "close stream"
            if isinstance(control, protocol.Finalize):
                await self._finalize(control.channel)
            elif isinstance(control, protocol.Configure):
                self._post(
                    protocol.configure_failure_message(self._request_id, has_keyterms=control.has_keyterms)
                )
            elif isinstance(control, protocol.UnknownMessage):
                self._log.debug("ignored text message of %d chars", len(control.text))

    async def _finalize(self, channel: int | None) -> None:
        decoder = self._decoder
        # Let the container decoder catch up with everything received before the Finalize.
        await asyncio.to_thread(decoder.drained, _DRAIN_TIMEOUT_S)
        for item in self._channels:
            if channel is None or item.index == channel:
                item.finalize(from_finalize=True)

    async def _flush(self, workers: list[asyncio.Task[None]], *, from_finalize: bool) -> None:
        await asyncio.to_thread(self._decoder.finish, _FLUSH_TIMEOUT_S)
        # Audio decoded in the decoder thread is delivered through the loop; let it land.
        await _yield_to_loop()
        for channel in self._channels:
            channel.finalize(from_finalize=from_finalize)
            channel.close()
        await asyncio.wait_for(asyncio.gather(*workers), _FLUSH_TIMEOUT_S * 3)


async def _yield_to_loop() -> None:
    await asyncio.sleep(0)


def _describe(options: ListenOptions) -> str:
    encoding = options.encoding.value if options.encoding else "container"
    return (
        f"encoding={encoding} sample_rate={options.sample_rate} channels={options.channels} "
        f"multichannel={options.multichannel} interim={options.interim_results} "
        f"endpointing={options.endpointing_ms}"
    )


async def run_server(config: EngineConfig, ready: Callable[[EngineServer], Awaitable[None]]) -> None:
    """Serve until cancelled, after telling ``ready`` where."""
    async with EngineServer(config) as server:
        await ready(server)
        await server.serve_forever()
