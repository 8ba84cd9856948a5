"""One StreamTranscribe stream's life.

A session owns the upstream connection and three kinds of work, run in one TaskGroup so that
a failure of one stops the others:

- the client reader appends audio and controls to the replay log (holding the client back,
  through gRPC flow control, when the log is full or the client runs too far ahead);
- the upstream loop connects (with retries), then runs a sender (log -> websocket, KeepAlive
  during silence, CloseStream at the end) and a receiver (websocket -> rebased, de-duplicated
  responses) until the upstream closes after CloseStream, reconnecting and replaying the
  uncommitted audio when it fails for a retryable reason;
- the caller iterates :meth:`Session.run`, which yields responses from a bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from transcribe.v1 import transcribe_pb2 as pb

from gateway.audiolog import AudioLog
from gateway.errors import (
    ClientError,
    GatewayError,
    Reason,
    RetriesExhaustedError,
    SessionError,
    UpstreamClosedError,
    UpstreamError,
    UpstreamStalledError,
)
from gateway.metrics import Metrics
from gateway.protocol import deepgram
from gateway.protocol.audio import RawFormat, raw_format
from gateway.protocol.outcome import classify
from gateway.protocol.timeline import Timeline
from gateway.upstream.connection import UpstreamConnection, UpstreamTarget
from gateway.upstream.retry import RetryPolicy, connect_with_retry

logger = logging.getLogger(__name__)

_OUTPUT_QUEUE_SIZE = 256
_REPLAY_ALIGNMENT_S = 0.16


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """What every session needs from the gateway's settings."""

    upstream_url: str
    api_key: str | None = field(repr=False)
    connect_timeout_s: float
    retry: RetryPolicy
    keepalive_interval_s: float
    stall_timeout_s: float
    replay_buffer_bytes: int
    replay_preroll_s: float
    backpressure_timeout_s: float
    max_lead_s: float | None
    max_session_s: float
    client_idle_timeout_s: float


class _Done:
    """Queue sentinel: the session is over (``error`` None means it ended well)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class SessionFailedError(GatewayError):
    """A session ended in error; carries where the client can resume."""

    def __init__(self, cause: GatewayError, resume: pb.ResumePoint) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.resume = resume


class Session:
    """One client stream relayed to one (or, after failures, several) upstream connections."""

    def __init__(self, config: pb.StreamingConfig, options: SessionOptions, metrics: Metrics) -> None:
        self.id = uuid.uuid4().hex
        self._metrics = metrics
        self.config = config
        self._options = options
        self._url = deepgram.listen_url(options.upstream_url, config)
        self._format: RawFormat | None = raw_format(config)
        channels = (config.channels or 1) if config.multichannel else 1
        self._timeline = Timeline(channels, config.start_offset_seconds)
        self._log = AudioLog()
        # Containerised audio can only be replayed from its first byte (the header), so it stays
        # replayable only while all of it fits the replay buffer.
        self._replayable = True
        self._output: asyncio.Queue[pb.StreamTranscribeResponse | _Done] = asyncio.Queue(_OUTPUT_QUEUE_SIZE)
        self._log_changed = asyncio.Event()
        # Set whenever log space may have been freed (a commit, or a send of unreplayable audio).
        self._progress = asyncio.Event()
        self._input_done = False
        self._input_ended = asyncio.Event()
        self._started_at = time.monotonic()
        self._summary = pb.SessionSummary()
        self._sent_bytes = 0
        self._replayed_bytes = 0
        self._next_seq = 0
        # Why input stopped early (drain, limits): the status the call ends with after the flush.
        self._end_status: SessionError | None = None
        self._reader: asyncio.Task[None] | None = None
        self._last_request_at = self._started_at
        self._first_audio_at: float | None = None
        self._first_result_seen = False
        self._finalize_sent_at: float | None = None
        self._close_sent_at: float | None = None
        self._last_final_at: float | None = None
        self.log = logging.LoggerAdapter(logger, {"session_id": self.id, "upstream_request_id": ""})

    # --- public ------------------------------------------------------------------------------

    async def run(
        self, requests: AsyncIterator[pb.StreamTranscribeRequest]
    ) -> AsyncIterator[pb.StreamTranscribeResponse]:
        """Relay ``requests`` (the stream after its config) and yield the responses.

        Raises SessionFailedError when the session ends in error.
        """
        worker = asyncio.create_task(self._work(requests), name=f"session-{self.id}")
        try:
            while True:
                item = await self._output.get()
                if isinstance(item, _Done):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            if not worker.done():
                worker.cancel()
            # Wait for the upstream to be closed before the RPC ends, whatever ended it.
            await asyncio.gather(worker, return_exceptions=True)

    async def drain(self, grace_s: float) -> None:
        """The gateway is shutting down: tell the client, stop taking audio, flush the upstream."""
        if self._end_status is not None:
            return
        await self._emit(
            upstream_event=pb.UpstreamEvent(
                going_away=pb.GoingAway(reason="the gateway is shutting down", grace_seconds=grace_s)
            )
        )
        self._stop_input(
            grpc.StatusCode.UNAVAILABLE,
            Reason.DRAINING,
            "the gateway is shutting down: every final result of the audio received was delivered; "
            "send the rest on a new stream (see the ResumePoint in the details)",
        )

    def _stop_input(self, code: grpc.StatusCode, reason: Reason, message: str) -> None:
        """Take no more audio; flush what was received; then end the call with ``code``."""
        if self._end_status is not None:
            return
        self._end_status = SessionError(code, reason, message)
        self.log.info("stopping input: %s", message)
        if self._reader is not None:
            self._reader.cancel()
        self._input_done = True
        self._input_ended.set()
        self._log_changed.set()

    @property
    def resume_point(self) -> pb.ResumePoint:
        committed = self._timeline.committed_seconds
        return pb.ResumePoint(
            committed_seconds=round(committed + self.config.start_offset_seconds, 6),
            committed_bytes=self._format.byte_offset(committed) if self._format else 0,
            received_seconds=round(self._received_seconds() + self.config.start_offset_seconds, 6),
        )

    # --- the work ----------------------------------------------------------------------------

    async def _work(self, requests: AsyncIterator[pb.StreamTranscribeRequest]) -> None:
        failure: GatewayError | None = None
        try:
            async with asyncio.TaskGroup() as group:
                self._reader = group.create_task(self._read_client(requests))
                limits = group.create_task(self._enforce_limits())
                await self._run_upstream()
                limits.cancel()
        except* GatewayError as errors:
            first = errors.exceptions[0]
            assert isinstance(first, GatewayError)
            failure = first
        except* Exception:
            self.log.exception("session failed unexpectedly")
            failure = SessionError(
                grpc.StatusCode.INTERNAL, Reason.INTERNAL, "internal gateway error; see the gateway's logs"
            )
        if failure is not None:
            await self._output.put(_Done(SessionFailedError(failure, self.resume_point)))
            return
        self._observe_flush()
        self._summary.audio_received_seconds = round(self._received_seconds(), 6)
        self._summary.audio_relayed_seconds = round(self._seconds(self._sent_bytes), 6)
        self._summary.audio_replayed_seconds = round(self._seconds(self._replayed_bytes), 6)
        await self._output.put(pb.StreamTranscribeResponse(summary=self._summary))
        end = SessionFailedError(self._end_status, self.resume_point) if self._end_status else None
        await self._output.put(_Done(end))

    async def _enforce_limits(self) -> None:
        """End the input when the session is too long or its client has gone quiet.

        Once the input has ended (half-close, drain) the limits have nothing left to stop: the
        flush that follows is bounded by the retry and stall timeouts instead.
        """
        options = self._options
        while not self._input_done:
            session_end = self._started_at + options.max_session_s
            idle_end = self._last_request_at + options.client_idle_timeout_s
            await self._input_ended_or(min(session_end, idle_end))
            now = time.monotonic()
            if self._input_done:
                return
            if now >= session_end:
                self._stop_input(
                    grpc.StatusCode.OUT_OF_RANGE,
                    Reason.SESSION_TOO_LONG,
                    f"the stream reached its maximum length of {options.max_session_s:g} s; audio after "
                    f"{self._received_seconds():.3f} s was not transcribed: send it on a new stream with "
                    "start_offset_seconds set to that time",
                )
            elif now >= self._last_request_at + options.client_idle_timeout_s:
                self._stop_input(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    Reason.CLIENT_IDLE,
                    f"the client sent nothing for {options.client_idle_timeout_s:g} s",
                )

    async def _input_ended_or(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic) or the end of the input, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                await self._input_ended.wait()

    async def _read_client(self, requests: AsyncIterator[pb.StreamTranscribeRequest]) -> None:
        metrics = self._metrics
        async for request in requests:
            self._last_request_at = time.monotonic()
            kind = request.WhichOneof("request")
            if kind == "audio":
                if request.audio:
                    await self._admit(len(request.audio))
                    self._log.append_audio(request.audio)
                    self._log_changed.set()
                    if self._first_audio_at is None:
                        self._first_audio_at = self._last_request_at
                    if self._format is not None:
                        metrics.audio_received.inc(self._format.seconds(len(request.audio)))
            elif kind == "control":
                command = request.control.WhichOneof("command")
                if command == "finalize":
                    finalize = request.control.finalize
                    channel = finalize.channel if finalize.HasField("channel") else None
                    self._log.append_control(deepgram.finalize_message(channel))
                    self._log_changed.set()
                elif command != "keep_alive":
                    raise ClientError("control request has no command set")
            elif kind == "config":
                raise ClientError("config may only be sent once, as the first request")
            else:
                raise ClientError("request has none of config, audio or control set")
        self._input_done = True
        self._input_ended.set()
        self._log_changed.set()

    async def _admit(self, n_bytes: int) -> None:
        """Hold the client back while the replay log is full or it runs too far ahead."""
        cap = self._options.replay_buffer_bytes
        if self._format is None and self._replayable and self._log.held_bytes + n_bytes > cap:
            self._replayable = False
            self.log.info("containerised audio outgrew the replay buffer: a reconnect cannot replay it")
        while self._log.held_bytes + n_bytes > cap and self._log.held_bytes:
            if not self._replayable:
                # Nothing can be replayed any more, so only what is still unsent is worth keeping.
                self._log.trim(self._log.received_bytes, before_seq=self._next_seq)
                if self._log.held_bytes + n_bytes <= cap:
                    break
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), self._options.backpressure_timeout_s)
            except TimeoutError:
                raise SessionError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    Reason.BACKPRESSURE,
                    f"over {cap} bytes of audio have been waiting for transcripts for more than "
                    f"{self._options.backpressure_timeout_s:g} s: the upstream cannot keep up; "
                    "send audio at real-time pace",
                ) from None
        if self._options.max_lead_s is not None and self._format is not None:
            lead = self._received_seconds() - (time.monotonic() - self._started_at)
            if lead > self._options.max_lead_s:
                # Slowing the reader down is enough: gRPC flow control pushes back on the client.
                await asyncio.sleep(lead - self._options.max_lead_s)

    async def _run_upstream(self) -> None:
        target = UpstreamTarget(self._url, self._options.api_key, self._options.connect_timeout_s)
        attempts_used = 0
        reconnects = 0
        while True:
            connection, attempts = await connect_with_retry(
                target, self._options.retry, attempts_used=attempts_used, on_failure=self._connect_failed
            )
            self._metrics.upstream_connects.labels("ok").inc()
            replayed = self._rewind()
            self._summary.upstream_request_ids.append(connection.request_id)
            self.log.extra = {"session_id": self.id, "upstream_request_id": connection.request_id}
            if reconnects == 0:
                self.log.info("upstream connected: %s", connection.request_id)
                await self._emit(
                    session_started=pb.SessionStarted(
                        session_id=self.id,
                        upstream_request_id=connection.request_id,
                        config=self.config,
                    )
                )
            else:
                self.log.info(
                    "upstream reconnected after %d attempt(s), replaying %d bytes",
                    attempts,
                    replayed,
                )
                await self._emit(
                    upstream_event=pb.UpstreamEvent(
                        reconnected=pb.Reconnected(
                            upstream_request_id=connection.request_id,
                            replayed_audio_seconds=round(self._seconds(replayed), 6),
                            attempts=attempts,
                        )
                    )
                )
            state = _ConnectionState()
            try:
                await self._relay(connection, state)
                return
            except UpstreamError as exc:
                outcome = classify(exc)
                if not outcome.retryable:
                    raise
                # A connection that answered ends the outage; one that died before answering
                # anything spends the same retry budget as a refused handshake.
                attempts_used = 0 if state.answered else attempts_used + attempts
                if not self._replayable:
                    raise SessionError(
                        grpc.StatusCode.UNAVAILABLE,
                        Reason.UPSTREAM_NOT_REPLAYABLE,
                        f"{outcome.message}; the containerised audio cannot be replayed on a new "
                        "connection (it outgrew the replay buffer): resume from the ResumePoint",
                    ) from exc
                if attempts_used >= self._options.retry.max_attempts:
                    raise RetriesExhaustedError(exc, attempts_used) from exc
                reconnects += 1
                self._summary.reconnect_count = reconnects
                self._metrics.upstream_reconnects.labels(outcome.reason).inc()
                self.log.warning("upstream failed (%s); reconnecting", outcome.reason)
                await self._emit(
                    upstream_event=pb.UpstreamEvent(
                        reconnecting=pb.Reconnecting(
                            attempt=reconnects,
                            reason=outcome.reason,
                            committed_seconds=self.resume_point.committed_seconds,
                        )
                    )
                )

    def _connect_failed(self, error: UpstreamError, attempt: int) -> None:
        self._metrics.upstream_connects.labels(classify(error).reason).inc()

    def _rewind(self) -> int:
        """Point the sender at the first uncommitted entry; returns the bytes it will resend."""
        if self._format is not None:
            self._log.trim(self._replay_position(), before_seq=self._log.end_seq)
            self._timeline.start_connection(self._format.seconds(self._log.start_position))
        # Containerised audio is resent from its first byte; the timeline drops what repeats.
        resent = sum(
            len(e.payload)
            for e in (self._log.get(s) for s in range(self._log.start_seq, self._next_seq))
            if isinstance(e.payload, bytes)
        )
        self._replayed_bytes += resent
        if resent and self._format is not None:
            self._metrics.audio_replayed.inc(self._format.seconds(resent))
        self._next_seq = self._log.start_seq
        return resent

    async def _relay(self, connection: UpstreamConnection, state: _ConnectionState) -> None:
        """Run one connection until the upstream closes after CloseStream."""
        async with connection:
            try:
                async with asyncio.TaskGroup() as group:
                    sender = group.create_task(self._send(connection, state))
                    watchdog = group.create_task(self._watch(connection, state))
                    await self._receive(connection, state)
                    sender.cancel()
                    watchdog.cancel()
            except* UpstreamError as errors:
                raise errors.exceptions[0] from None

    async def _send(self, connection: UpstreamConnection, state: _ConnectionState) -> None:
        log = self._log
        changed = self._log_changed
        while True:
            if self._next_seq < log.end_seq:
                payload = log.get(self._next_seq).payload
                if isinstance(payload, bytes):
                    await connection.send_audio(payload)
                    self._sent_bytes += len(payload)
                    if self._format is not None:
                        self._metrics.audio_relayed.inc(self._format.seconds(len(payload)))
                else:
                    await connection.send_text(payload)
                    self._finalize_sent_at = time.monotonic()
                self._next_seq += 1
                state.sent()
                self._progress.set()
                continue
            if self._input_done:
                if not state.close_sent:
                    await connection.send_text(deepgram.CLOSE_STREAM)
                    state.close_sent = True
                    if self._close_sent_at is None:
                        self._close_sent_at = time.monotonic()
                    state.sent()
                # Nothing more to send on this connection; the receiver decides when it ends.
                await asyncio.Event().wait()
            if state.keepalive_due:
                state.keepalive_due = False
                await connection.send_text(deepgram.KEEPALIVE)
                state.last_sent = time.monotonic()
                continue
            changed.clear()
            await changed.wait()

    async def _watch(self, connection: UpstreamConnection, state: _ConnectionState) -> None:
        """Keepalive and stall detection for one connection: one timer for both, instead of a
        timeout on every send and receive of the hot path."""
        keepalive = self._options.keepalive_interval_s
        stall = self._options.stall_timeout_s
        while True:
            now = time.monotonic()
            waiting_since = state.waiting_since
            if waiting_since is not None and now - waiting_since >= stall:
                raise UpstreamStalledError(stall, connection.request_id)
            if now - state.last_sent >= keepalive and not state.close_sent:
                # The sender owns the socket's writes; it sends the KeepAlive when woken.
                state.keepalive_due = True
                self._log_changed.set()
            wake = min(
                state.last_sent + keepalive,
                waiting_since + stall if waiting_since is not None else math.inf,
                now + stall / 2,
            )
            await asyncio.sleep(max(wake - now, 0.05))

    async def _receive(self, connection: UpstreamConnection, state: _ConnectionState) -> None:
        while True:
            try:
                message = await connection.recv()
            except UpstreamClosedError as exc:
                if state.close_sent and exc.code == 1000:
                    return
                raise
            state.received()
            try:
                parsed = deepgram.parse_message(message)
            except deepgram.MessageError as exc:
                self.log.warning("skipping a malformed upstream message: %s", exc)
                continue
            await self._deliver(parsed)

    async def _deliver(self, message: deepgram.UpstreamMessage) -> None:
        if isinstance(message, pb.Result):
            result = self._timeline.result(message)
            if result is None:
                return
            await self._emit(result=result)
            self._observe_result(result)
            if result.is_final:
                self._commit()
        elif isinstance(message, pb.SpeechStarted):
            await self._emit(speech_started=self._timeline.speech_started(message))
        elif isinstance(message, pb.UtteranceEnd):
            if (utterance_end := self._timeline.utterance_end(message)) is not None:
                await self._emit(utterance_end=utterance_end)
        elif isinstance(message, pb.UpstreamMetadata):
            self._summary.upstream_metadata.append(message)
        elif self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("skipping upstream message of type %r", message.type)

    def _observe_result(self, result: pb.Result) -> None:
        now = time.monotonic()
        if not self._first_result_seen and self._first_audio_at is not None:
            self._first_result_seen = True
            self._metrics.first_result.observe(now - self._first_audio_at)
        if result.is_final:
            self._last_final_at = now
            if result.from_finalize and self._finalize_sent_at is not None:
                self._metrics.finalize_latency.observe(now - self._finalize_sent_at)
                self._finalize_sent_at = None

    def _observe_flush(self) -> None:
        """Time from the end of the audio (CloseStream) to the last final result."""
        if self._close_sent_at is not None and self._last_final_at is not None:
            self._metrics.finalize_latency.observe(max(self._last_final_at - self._close_sent_at, 0.0))

    def _commit(self) -> None:
        if self._format is not None:
            self._log.trim(self._replay_position(), before_seq=self._next_seq)
        self._progress.set()

    def _replay_position(self) -> int:
        """Where a replay starts: a little before the committed cursor, so that the new
        connection hears the first uncommitted words in context; the timeline drops the words
        this repeats."""
        assert self._format is not None
        start = max(self._timeline.committed_seconds - self._options.replay_preroll_s, 0.0)
        # Recognisers analyse audio in fixed frames counted from the connection's first byte
        # (10, 20, 32 ms...). Starting the replay on a common multiple of those frame sizes
        # puts the new connection's frames where the old one's were, so the same audio is
        # heard the same way and transcribed with the same words.
        start = math.floor(start / _REPLAY_ALIGNMENT_S + 1e-9) * _REPLAY_ALIGNMENT_S
        return self._format.byte_offset(start)

    async def _emit(self, **response: object) -> None:
        await self._output.put(pb.StreamTranscribeResponse(**response))  # type: ignore[arg-type]

    def _received_seconds(self) -> float:
        return self._seconds(self._log.received_bytes)

    def _seconds(self, n_bytes: int) -> float:
        if self._format is not None:
            return self._format.seconds(n_bytes)
        # Containerised audio: only the upstream knows its duration; report what it transcribed.
        return self._timeline.committed_seconds if n_bytes else 0.0


class _ConnectionState:
    """Book-keeping of one upstream connection, for the watchdog and the retry budget."""

    def __init__(self) -> None:
        self.close_sent = False
        self.answered = False
        self.keepalive_due = False
        self.last_sent = time.monotonic()
        # When the oldest frame the upstream has not answered yet was sent.
        self.waiting_since: float | None = None

    def sent(self) -> None:
        self.last_sent = time.monotonic()
        if self.waiting_since is None:
            self.waiting_since = self.last_sent

    def received(self) -> None:
        self.answered = True
        self.waiting_since = None
