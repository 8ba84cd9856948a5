"""One accepted stream: audio in, per-channel VAD/segmenter/decodes, Deepgram's messages out.

::

    reader ──bytes──> AudioDecoder ──16 kHz──> per channel: VAD -> Segmenter -> jobs
                                                              │
    sender <──JSON── outbox <── channel worker <── DecodePool (threads, finals first)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from transcribe_engine import protocol
from transcribe_engine.audio import SAMPLE_RATE, AudioDecoder, RawDecoder, Samples, SniffingDecoder
from transcribe_engine.buffer import AudioBuffer
from transcribe_engine.capacity import CostMeter
from transcribe_engine.config import EngineConfig
from transcribe_engine.decode_pool import DecodePool
from transcribe_engine.numbers import spell_numbers
from transcribe_engine.protocol import CloseCode, ListenOptions, ResultWindow, Word
from transcribe_engine.recognizer import ChannelRecognizer, Recognizer
from transcribe_engine.segmenter import (
    Event,
    Segmenter,
    SegmenterSettings,
    SpeechStarted,
    UtteranceEnd,
    Window,
)
from transcribe_engine.vad import StreamingVad

logger = logging.getLogger("transcribe_engine.server")

_OUTBOX_SIZE: Final = 4096
_DRAIN_TIMEOUT_S: Final = 2.0  # a container decoder that cannot catch up within this is stuck
_FLUSH_TIMEOUT_S: Final = 10.0
# Whisper turns a breath or a click into "Thank you."; such a final is reported empty (interims
# have their own, higher bar in the segmenter).
_MIN_FINAL_SPEECH_S: Final = 0.25
_LEFT_CONTEXT_S: Final = 1.0
# Digital silence after the audio of a final that was not cut at an endpoint (a flush at
# CloseStream or Finalize, a cap). Without it Whisper tends to invent a "Thank" after a last
# word the audio ends on (the encoder's zero padding is not silence to the model); with it the
# corpus's WER went from 7.5 % to 7.2 % (docs/engine.md). Endpoint finals end in silence already.
_END_SILENCE_S: Final = 0.5
# Per stream, whatever the client sends: audio queued for final decodes (beyond it the reader
# stops reading, so TCP pushes back), and bytes waiting for the container decoder.
_MAX_BACKLOG_S: Final = 30.0
_MAX_UNDECODED_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Job:
    window: Window
    audio: Samples
    audio_start: float  # stream time of audio[0]


class Channel:
    """VAD, segmenter, recogniser and the worker that turns windows into Results."""

    def __init__(
        self,
        index: int,
        stream: Stream,
        recognizer: ChannelRecognizer,
        vad: StreamingVad,
        settings: SegmenterSettings,
    ) -> None:
        self.index = index
        self._stream = stream
        self._recognizer = recognizer
        self._vad = vad
        self.segmenter = Segmenter(settings)
        self.audio = AudioBuffer()
        self._finals: deque[_Job] = deque()
        self._interim: _Job | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._segment_id = 0  # of the window currently open
        self._emitted: deque[Word] = deque(maxlen=32)  # recent final words, stream times
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
        # Whisper hallucinates on a lone short word cut at its onset; audio before the window
        # gives it context (words from there are dropped again, see place_words), but never
        # audio before the point the segmenter allows (see Window.context_start).
        earliest = max(window.audio_start - _LEFT_CONTEXT_S, window.context_start)
        start = max(round(earliest * SAMPLE_RATE), self.audio.first)
        end = round(window.end * SAMPLE_RATE)
        audio = self.audio.slice(start, end)
        if window.is_final and not window.speech_final:
            audio = np.concatenate([audio, np.zeros(round(_END_SILENCE_S * SAMPLE_RATE), np.float32)])
        return _Job(window, audio, start / SAMPLE_RATE)

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
                        self._emitted.extend(words)
                        self._handle(self.segmenter.note_final_words(words[-1].end))
                else:
                    assert self._interim is not None
                    job, self._interim = self._interim, None
                    words = await self._decode(job, final=False)
                    if not words:
                        self.segmenter.note_empty_interim(job.window)
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
        audio, begin = job.audio, job.audio_start
        words = await self._stream.pool.run(
            priority,
            lambda: recognizer.decode(audio, segment_id=window.segment_id, final=final),
        )
        return place_words(words, window, begin, reported=self._emitted)

    def release(self) -> None:
        self._recognizer.close()


def place_words(
    words: list[Word], window: Window, offset: float, *, reported: Sequence[Word] = ()
) -> list[Word]:
    """Shift decoder times to stream times; keep the window's own words, inside the window.

    Words whose middle is before the window come from the context audio. Those the previous
    finals already ``reported`` (heard again) are dropped; a word after them is one the previous
    final missed at the boundary (Whisper's times smear it into the context), and is kept.
    """
    spoken = [w for w in words if protocol.has_letters(w.text)]  # no punctuation on its own
    context = [w for w in spoken if offset + (w.start + w.end) / 2 < window.start]
    heard_before = [r for r in reported if r.end > offset]
    first_new = len(context)
    if heard_before:
        first_new = repeated_prefix([w.text for w in context], [r.text for r in heard_before])
    # A context word the alignment calls new still has to end after what was reported: words
    # that end earlier are the decoder's second opinion on audio already transcribed.
    reported_until = heard_before[-1].end if heard_before else window.start
    kept = [w for w in context[first_new:] if offset + w.end > reported_until]
    spoken = kept + spoken[len(context) :]
    placed: list[Word] = []
    for word in spoken:
        start, end = offset + word.start, offset + word.end
        start = min(max(start, window.start), window.end)
        end = min(max(end, start), window.end)
        placed.append(Word(word.text, start, end, word.confidence))
    return placed


_MAX_SKIPPED_CHARS: Final = 12  # reported text the decoder may leave out of a re-hearing


def repeated_prefix(context: Sequence[str], reported: Sequence[str]) -> int:
    """How many leading ``context`` words re-hear ``reported`` ones: up to the last that matches
    the reported text in order (a misheard word between matches is part of the re-hearing).

    Compared as letters only, so "seat belts" re-hears "seatbelts".
    """
    heard = "".join(_letters(r) for r in reported)
    position = 0
    matched = 0
    for index, word in enumerate(context):
        letters = _letters(word)
        found = heard.find(letters, position) if letters else position
        if found >= 0 and found - position <= _MAX_SKIPPED_CHARS:
            position = found + len(letters)
            matched = index + 1
    return matched


def _letters(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


class Stream:
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
        meter: CostMeter,
    ) -> None:
        self._connection = connection
        self._meter = meter
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
            Channel(
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
            self._meter.heard(len(samples) / SAMPLE_RATE, interim_results=self._options.interim_results)

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
                if await self._unless_client_gone(self._flush(workers, from_finalize=False)):
                    self._post(self._metadata())
                    await self._finish_sender(sender)
                    await self._connection.close(CloseCode.NORMAL)
                else:
                    outcome = "client gone while flushing"
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

    async def _unless_client_gone(self, work: Awaitable[None]) -> bool:
        """Run ``work`` unless the client goes first: then nobody waits for its results, and
        the decodes it would still cost (and the stream's admission) go to the next client."""
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(self._connection.wait_closed())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not task.done():
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return not task.cancelled()

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
            if self._connection.state is not State.OPEN:
                # Messages still queued from a client that has closed: nobody will read the
                # results, so decoding them would only take workers from the next client.
                return "client closed"
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
