"""One StreamTranscribe stream's life: the tasks, timers and metrics around the relay core.

Every decision (what to send, whether the client's audio fits, when a connection is stalled,
whether and when to reconnect, the time base, the ResumePoint) is the relay core's
(:mod:`gateway.protocol.relay`); the session shuttles events to it and acts on its answers. It
owns the upstream connection and two kinds of work, run in one TaskGroup so that a failure of
one stops the other:

- the client reader feeds audio and controls to the core (holding the client back, through
  gRPC flow control, while the core says the replay log is full or the client runs too far
  ahead);
- the upstream loop, in the call's own task (the one running :meth:`Session.run`), connects,
  waiting the core's backoff between every two connections, then runs a sender (core ->
  websocket, KeepAlive during silence), a watchdog (the core's stall and outage deadlines) and a
  receiver (websocket -> rebased, de-duplicated responses) until the upstream closes after
  CloseStream, or the core decides to reconnect or give up. The receiver writes each response
  to the call itself (gRPC's flow control holds it back when the client reads slowly): no queue
  and no other task between them.

Timers, not tasks, watch the session's length and the client's silence, and publish its counts.

A drain arms a timer: when the grace is over, the call ends UNAVAILABLE (with its ResumePoint)
whatever it was waiting for, even a client that does not read its responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from prometheus_client import Counter
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import (
    ClientCancelledError,
    ClientError,
    GatewayError,
    Reason,
    SessionError,
    SessionFailedError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamStalledError,
)
from gateway.metrics import Metrics
from gateway.protocol import deepgram
from gateway.protocol.outcome import classify
from gateway.protocol.relay import Finished, GiveUp, Relay, RelayLimits
from gateway.upstream.connection import UpstreamConnection, UpstreamTarget, open_upstream
from gateway.upstream.retry import RetryPolicy

logger = logging.getLogger(__name__)

# How often a session adds its per-frame counts to the metrics (and so how far a scrape lags).
_PUBLISH_INTERVAL_S = 1.0
# At most this much waiting audio leaves as one websocket message (3.2 s of 16 kHz linear16:
# far below any upstream's message limit).
_BATCH_BYTES = 100 * 1024


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
    coalesce_audio_s: float
    max_session_s: float
    client_idle_timeout_s: float


Write = Callable[[pb.StreamTranscribeResponse], Awaitable[None]]


class Session:
    """One client stream relayed to one (or, after failures, several) upstream connections."""

    def __init__(
        self,
        config: pb.StreamingConfig,
        options: SessionOptions,
        metrics: Metrics,
        *,
        requests_received: Counter | None = None,
        responses_sent: Counter | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self._metrics = metrics
        self.config = config
        self._options = options
        self._url = deepgram.listen_url(options.upstream_url, config)
        self._relay = relay = Relay(
            config,
            RelayLimits(
                replay_buffer_bytes=options.replay_buffer_bytes,
                replay_preroll_s=options.replay_preroll_s,
                stall_timeout_s=options.stall_timeout_s,
                retry=options.retry,
                coalesce_s=options.coalesce_audio_s,
            ),
        )
        self._format = relay.format
        # Per-frame counts (the client's messages after the config go to the RPC's labelled
        # grpc_server_msg_received, the responses to its grpc_server_msg_sent), published about
        # once a second and at the end.
        self._counts = metrics.stream_counts(
            relay.format.bytes_per_second if relay.format is not None else None,
            requests_received,
            responses_sent,
        )
        self._publish_timer: asyncio.TimerHandle | None = None
        self._inbound = deepgram.InboundGuard(config)
        self._write: Write | None = None
        # Two tasks may write: the call's, and a drain's going_away notice.
        self._write_lock = asyncio.Lock()
        # The drain's going_away, and the task that writes it.
        self._going_away: pb.StreamTranscribeResponse | None = None
        self._notice: asyncio.Task[None] | None = None
        # Set when the drain's grace is over: how the call ends (its timer cancels the work).
        self._expired: SessionFailedError | None = None
        self._log_changed = asyncio.Event()
        # The connection the sender writes to while it is parked, caught up, on _log_changed:
        # then the reader sends a client's frame itself, without waking the sender (one task
        # switch and an Event round trip less per frame). None while the sender has work.
        self._idle_connection: UpstreamConnection | None = None
        # Set while the parked sender's timer will send audio that coalescing holds: new audio
        # then need not wake it.
        self._sender_timed = False
        # Set whenever log space may have been freed (a commit, or a send of unreplayable audio)
        # while the reader is held for it (_holding).
        self._progress = asyncio.Event()
        self._holding = False
        self._limits_timer: asyncio.TimerHandle | None = None
        self._keepalive_due = False
        self._started_at = time.monotonic()
        self._summary = pb.SessionSummary()
        # Why input stopped early (drain, limits): the status the call ends with after the flush.
        self._end_status: SessionError | None = None
        self._reader: asyncio.Task[None] | None = None
        self._after_input: Callable[[], Awaitable[None]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._last_request_at = self._started_at
        self._first_audio_at: float | None = None
        self._first_result_seen = False
        self._finalize_sent_at: float | None = None
        self._close_sent_at: float | None = None
        self._last_final_at: float | None = None
        self.log = logging.LoggerAdapter(logger, {"session_id": self.id, "upstream_request_id": ""})

    # --- public ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the session's work and wait for it: for a server that stopped without cancelling
        a call's handler (the task running :meth:`run`)."""
        worker = self._worker
        if worker is not None and not worker.done():
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def run(
        self,
        requests: AsyncIterator[pb.StreamTranscribeRequest],
        write: Write,
        *,
        after_input: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Relay ``requests`` (the stream after its config), writing the responses with
        ``write`` (the call's ``context.write``), in the calling task; return when the session
        ended well, the upstream closed.

        ``after_input`` runs when ``requests`` ends, before the input counts as ended: it may
        raise (a GatewayError) when the end was not a half-close but a cancelled call.
        Raises SessionFailedError when the session ends in error.
        """
        self._write = write
        self._after_input = after_input
        self._worker = task = asyncio.current_task()
        assert task is not None
        try:
            # A drain may come between the session's creation and its run.
            if self._going_away is not None:
                self._start_notice()
            if self._expired is not None:
                raise self._expired
            await self._work(requests)
        except asyncio.CancelledError:
            # The drain timer's cancel (and no other) becomes the drain's status.
            if self._expired is not None and task.uncancel() == 0:
                raise self._expired from None
            raise
        finally:
            if self._drain_timer is not None:
                self._drain_timer.cancel()
            if self._notice is not None and not self._notice.done():
                self._notice.cancel()

    async def drain(self, grace_s: float) -> None:
        """The gateway is shutting down: tell the client, stop taking audio, flush the upstream;
        after ``grace_s``, end the call UNAVAILABLE with its ResumePoint whatever is left.

        Returns at once: it never waits on the client or the upstream."""
        if self._drain_timer is not None:
            return
        self._drain_timer = asyncio.get_running_loop().call_later(grace_s, self._drain_expired)
        going_away = pb.GoingAway(reason="the gateway is shutting down", grace_seconds=grace_s)
        self._going_away = pb.StreamTranscribeResponse(upstream_event=pb.UpstreamEvent(going_away=going_away))
        if self._write is not None:
            self._start_notice()
        self._stop_input(
            grpc.StatusCode.UNAVAILABLE,
            Reason.DRAINING,
            "the gateway is shutting down: every final result of the audio received was delivered; "
            "send the rest on a new stream (see the ResumePoint in the details)",
        )

    def _drain_expired(self) -> None:
        error = SessionError(
            grpc.StatusCode.UNAVAILABLE,
            Reason.DRAINING,
            "the gateway is shutting down and the drain grace is over: results after the "
            "ResumePoint's committed_seconds were not delivered; send that audio on a new stream",
        )
        self.log.warning("drain grace over: ending the stream")
        self._expired = SessionFailedError(error, self.resume_point)
        if self._worker is not None:
            self._worker.cancel()

    def _start_notice(self) -> None:
        # Its own task: the call's may be waiting on the upstream (or on a client that does
        # not read), and a drain never waits on either.
        self._notice = asyncio.create_task(self._notify(), name=f"going-away-{self.id}")

    async def _notify(self) -> None:
        """Write the going_away notice; a call that ended takes none."""
        assert self._going_away is not None
        with contextlib.suppress(GatewayError):
            await self._respond(self._going_away)

    def _stop_input(self, code: grpc.StatusCode, reason: Reason, message: str) -> None:
        """Take no more audio; flush what was received; then end the call with ``code``."""
        if self._end_status is not None:
            return
        self._end_status = SessionError(code, reason, message)
        self.log.info("stopping input: %s", message)
        if self._reader is not None:
            self._reader.cancel()
        self._end_input()

    def _end_input(self) -> None:
        self._relay.input_ended()
        self._log_changed.set()

    @property
    def resume_point(self) -> pb.ResumePoint:
        return self._relay.resume_point()

    # --- the work ----------------------------------------------------------------------------

    def _publish_counts(self) -> None:
        self._counts.publish()
        self._publish_timer = asyncio.get_running_loop().call_later(_PUBLISH_INTERVAL_S, self._publish_counts)

    async def _work(self, requests: AsyncIterator[pb.StreamTranscribeRequest]) -> None:
        self._publish_timer = asyncio.get_running_loop().call_later(_PUBLISH_INTERVAL_S, self._publish_counts)
        try:
            await self._relay_stream(requests)
        finally:
            self._publish_timer.cancel()
            if self._limits_timer is not None:
                self._limits_timer.cancel()
            self._counts.publish()

    async def _relay_stream(self, requests: AsyncIterator[pb.StreamTranscribeRequest]) -> None:
        failure: GatewayError | None = None
        try:
            async with asyncio.TaskGroup() as group:
                self._reader = group.create_task(self._read_client(requests))
                self._check_limits()
                await self._run_upstream()
                self._reader.cancel()
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
            raise SessionFailedError(failure, self.resume_point)
        relay = self._relay
        self._observe_flush()
        self._summary.audio_received_seconds = round(relay.received_seconds, 6)
        self._summary.audio_relayed_seconds = round(relay.seconds(relay.sent_bytes), 6)
        self._summary.audio_replayed_seconds = round(relay.seconds(relay.replayed_bytes), 6)
        try:
            await self._respond(pb.StreamTranscribeResponse(summary=self._summary))
        except GatewayError as exc:
            raise SessionFailedError(exc, self.resume_point) from None
        if self._end_status is not None:
            raise SessionFailedError(self._end_status, self.resume_point)

    def _check_limits(self) -> None:
        """End the input when the session is too long or its client has gone quiet; else look
        again at the nearer of the two deadlines. A timer, not a task: it runs twice per idle
        timeout at most, and a task would hold a stack of frames for each session.

        Once the input has ended (half-close, drain) the limits have nothing left to stop: the
        flush that follows is bounded by the retry and stall timeouts instead.
        """
        options = self._options
        relay = self._relay
        if relay.input_done:
            return
        now = time.monotonic()
        session_end = self._started_at + options.max_session_s
        idle_end = self._last_request_at + options.client_idle_timeout_s
        if now >= session_end:
            self._stop_input(
                grpc.StatusCode.OUT_OF_RANGE,
                Reason.SESSION_TOO_LONG,
                f"the stream reached its maximum length of {options.max_session_s:g} s; audio after "
                f"{relay.received_seconds:.3f} s was not transcribed: send it on a new stream with "
                "start_offset_seconds set to that time",
            )
        elif now >= idle_end:
            self._stop_input(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                Reason.CLIENT_IDLE,
                f"the client sent nothing for {options.client_idle_timeout_s:g} s",
            )
        else:
            wait = min(session_end, idle_end) - now
            self._limits_timer = asyncio.get_running_loop().call_later(wait, self._check_limits)

    async def _read_client(self, requests: AsyncIterator[pb.StreamTranscribeRequest]) -> None:
        counts = self._counts
        relay = self._relay
        changed = self._log_changed
        fmt = self._format
        max_lead_s = self._options.max_lead_s if fmt is not None else None
        async for request in requests:
            self._last_request_at = now = time.monotonic()
            counts.requests += 1
            kind = request.WhichOneof("request")
            if kind == "audio":
                # Each read of a bytes field is a copy: read it once.
                audio = request.audio
                size = len(audio)
                if size:
                    if not relay.admits(size):
                        await self._hold(size)
                    if max_lead_s is not None:
                        lead = relay.received_seconds - (now - self._started_at)
                        if lead > max_lead_s:
                            # Slowing the reader down is enough: gRPC flow control pushes back.
                            await asyncio.sleep(lead - max_lead_s)
                    if self._first_audio_at is None:
                        self._first_audio_at = now
                    counts.received_bytes += size
                    connection = self._idle_connection
                    if (
                        connection is not None
                        and not changed.is_set()
                        and connection.writable
                        and relay.audio_through(audio, now)
                    ):
                        # The sender is caught up and the socket takes the write at once: send
                        # it from here (the reader never waits on the upstream's flow control:
                        # the sender does). A failed write drops the connection, which the
                        # receiver reports: the frame is in the log, and a reconnect replays it.
                        connection.write_audio(audio)
                        counts.relayed_bytes += size
                        continue
                    relay.audio_in(audio, now)
                    if relay.audio_due(now) is not None:
                        # Coalescing holds it: the sender's timer sends it, once armed.
                        if not self._sender_timed:
                            changed.set()
                    elif connection is not None and not changed.is_set() and connection.writable:
                        # Held audio that is now due: it leaves here, before the next frame is
                        # read (a burst of frames would otherwise join it, and every later
                        # message would start at another frame).
                        self._send_due(connection, now)
                    else:
                        changed.set()
            elif kind == "control":
                command = request.control.WhichOneof("command")
                if command == "finalize":
                    finalize = request.control.finalize
                    channel = finalize.channel if finalize.HasField("channel") else None
                    if relay.control_in(deepgram.finalize_message(channel)):
                        changed.set()
                elif command != "keep_alive":
                    raise ClientError("control request has no command set")
            elif kind == "config":
                raise ClientError("config may only be sent once, as the first request")
            else:
                raise ClientError("request has none of config, audio or control set")
        if self._after_input is not None:
            await self._after_input()
        self._end_input()

    def _send_due(self, connection: UpstreamConnection, now: float) -> None:
        """Send the audio waiting, from the reader's task, while the sender is caught up and the
        socket takes the write at once (as for a frame sent straight through)."""
        frames = self._relay.take_audio(now, _BATCH_BYTES)
        if frames:
            connection.write_audio(b"".join(frames))
            self._sent_audio(frames)

    async def _hold(self, n_bytes: int) -> None:
        """Hold the client back (gRPC flow control pushes back on it) until the core has room
        for ``n_bytes``."""
        relay = self._relay
        options = self._options
        replayable = relay.replayable
        while not relay.admits(n_bytes):
            if replayable and not relay.replayable:
                replayable = False
                self.log.info("containerised audio outgrew the replay buffer: a reconnect cannot replay it")
            self._progress.clear()
            self._holding = True
            try:
                await asyncio.wait_for(self._progress.wait(), options.backpressure_timeout_s)
            except TimeoutError:
                raise SessionError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    Reason.BACKPRESSURE,
                    f"over {options.replay_buffer_bytes} bytes of audio have been waiting for "
                    f"transcripts for more than {options.backpressure_timeout_s:g} s: the upstream "
                    "cannot keep up; send audio at real-time pace",
                ) from None
            finally:
                self._holding = False

    async def _run_upstream(self) -> None:
        relay = self._relay
        target = UpstreamTarget(self._url, self._options.api_key, self._options.connect_timeout_s)
        delay = 0.0
        started = False
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            relay.connecting(time.monotonic())
            try:
                connection = await self._open(target)
            except UpstreamError as exc:
                outcome = classify(exc)
                self._metrics.upstream_connects.labels(outcome.reason).inc()
                decision = relay.failed(exc, time.monotonic())
                if isinstance(decision, Finished):
                    return
                if isinstance(decision, GiveUp):
                    raise decision.error from exc
                delay = decision.delay_s
                self.log.info(
                    "upstream connect attempt %d failed (%s); retrying in %.2f s",
                    relay.budget.attempts,
                    outcome.reason,
                    delay,
                )
                continue
            self._metrics.upstream_connects.labels("ok").inc()
            replayed = relay.opened(time.monotonic())
            if replayed and self._format is not None:
                self._metrics.audio_replayed.inc(self._format.seconds(replayed))
            self._summary.upstream_request_ids.append(connection.request_id)
            self.log.extra = {"session_id": self.id, "upstream_request_id": connection.request_id}
            if not started:
                started = True
                self.log.info("upstream connected: %s", connection.request_id)
                await self._emit(
                    session_started=pb.SessionStarted(
                        session_id=self.id,
                        upstream_request_id=connection.request_id,
                        config=self.config,
                    )
                )
            else:
                attempts = relay.budget.attempts_this_reconnect
                self.log.info(
                    "upstream reconnected after %d attempt(s), replaying %d bytes", attempts, replayed
                )
                await self._emit(
                    upstream_event=pb.UpstreamEvent(
                        reconnected=pb.Reconnected(
                            upstream_request_id=connection.request_id,
                            replayed_audio_seconds=round(relay.seconds(replayed), 6),
                            attempts=attempts,
                        )
                    )
                )
            try:
                await self._relay_connection(connection)
                return
            except UpstreamError as exc:
                decision = relay.failed(exc, time.monotonic())
                if isinstance(decision, Finished):
                    self.log.info("upstream ended (%s) after every final was delivered", exc)
                    return
                if isinstance(decision, GiveUp):
                    raise decision.error from exc
                delay = decision.delay_s
                outcome = decision.outcome
                self._summary.reconnect_count += 1
                self._metrics.upstream_reconnects.labels(outcome.reason).inc()
                self.log.warning("upstream failed (%s); reconnecting in %.2f s", outcome.reason, delay)
                await self._emit(
                    upstream_event=pb.UpstreamEvent(
                        reconnecting=pb.Reconnecting(
                            attempt=self._summary.reconnect_count,
                            reason=outcome.reason,
                            committed_seconds=self.resume_point.committed_seconds,
                        )
                    )
                )

    async def _open(self, target: UpstreamTarget) -> UpstreamConnection:
        """Open a connection, within what is left of the outage's time, if one is under way."""
        deadline = self._relay.budget.deadline
        if deadline is None:
            return await open_upstream(target)
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                return await open_upstream(target)
        except TimeoutError:
            raise UpstreamConnectError(
                f"handshake still pending when the outage reached {self._options.retry.max_elapsed_s:g} s"
            ) from None

    async def _relay_connection(self, connection: UpstreamConnection) -> None:
        """Run one connection until the upstream closes after CloseStream."""
        async with connection:
            try:
                async with asyncio.TaskGroup() as group:
                    sender = group.create_task(self._send(connection))
                    watchdog = group.create_task(self._watch(connection))
                    await self._receive(connection)
                    sender.cancel()
                    watchdog.cancel()
            except* GatewayError as errors:
                # The connection's failure (for the reconnect decision) or the call's (a write
                # the client is no longer there for), not wrapped in a group.
                raise errors.exceptions[0] from None
            finally:
                self._idle_connection = None

    async def _send(self, connection: UpstreamConnection) -> None:
        relay = self._relay
        changed = self._log_changed
        while True:
            now = time.monotonic()
            due = relay.audio_due(now)
            if due is None:
                # Audio already waiting (a backlog, a replay) leaves as one message.
                frames = relay.take_audio(now, _BATCH_BYTES)
                if frames:
                    await self._send_audio(connection, frames)
                    continue
                text = relay.take(now)
                if text is not None:
                    assert isinstance(text, str)  # audio would have been taken above
                    await self._send_text(connection, text)
                    continue
            if self._keepalive_due:
                self._keepalive_due = False
                await connection.send_text(deepgram.KEEPALIVE)
                relay.keepalive_sent(time.monotonic())
                continue
            changed.clear()
            self._idle_connection = connection
            self._sender_timed = due is not None
            try:
                if due is None:
                    await changed.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), due - now)
            finally:
                self._idle_connection = None
                self._sender_timed = False

    async def _send_audio(self, connection: UpstreamConnection, frames: list[bytes]) -> None:
        await connection.send_audio(frames)
        self._sent_audio(frames)

    def _sent_audio(self, frames: list[bytes]) -> None:
        self._counts.relayed_bytes += len(frames[0]) if len(frames) == 1 else sum(map(len, frames))
        if self._holding:
            # Unreplayable audio frees its room once sent.
            self._progress.set()

    async def _send_text(self, connection: UpstreamConnection, text: str) -> None:
        await connection.send_text(text)
        if text is deepgram.CLOSE_STREAM:
            if self._close_sent_at is None:
                self._close_sent_at = time.monotonic()
        else:
            self._finalize_sent_at = time.monotonic()

    async def _watch(self, connection: UpstreamConnection) -> None:
        """Keepalive and the core's stall and outage deadlines for one connection: one timer
        for all, instead of a timeout on every send and receive of the hot path."""
        relay = self._relay
        keepalive = self._options.keepalive_interval_s
        stall = self._options.stall_timeout_s
        while True:
            now = time.monotonic()
            if relay.stalled(now):
                since = relay.waiting_since or relay.close_sent_at or relay.last_sent
                raise UpstreamStalledError(now - since, connection.request_id)
            if now - relay.last_sent >= keepalive and not relay.close_sent:
                # The sender owns the socket's writes; it sends the KeepAlive when woken.
                self._keepalive_due = True
                self._log_changed.set()
            check = relay.next_check()
            wake = min(relay.last_sent + keepalive, check if check is not None else math.inf, now + stall / 2)
            await asyncio.sleep(max(wake - now, 0.05))

    async def _receive(self, connection: UpstreamConnection) -> None:
        relay = self._relay
        while True:
            try:
                message = await connection.recv()
            except UpstreamClosedError as exc:
                if relay.close_sent and exc.code == 1000:
                    return
                raise
            relay.answered_now()
            try:
                parsed = deepgram.parse_message(message)
                self._inbound.check(parsed, relay.received_seconds if self._format else None)
            except deepgram.MessageError as exc:
                self._metrics.upstream_invalid_messages.labels(exc.kind).inc()
                level = logging.WARNING if self._inbound.first_report() else logging.DEBUG
                self.log.log(level, "skipping an invalid upstream message: %s", exc)
                continue
            await self._deliver(parsed)

    async def _deliver(self, message: deepgram.UpstreamMessage) -> None:
        relay = self._relay
        if isinstance(message, pb.Result):
            result = relay.result(message)
            if result is None:
                return
            await self._emit(result=result)
            self._observe_result(result)
            if result.is_final:
                self._progress.set()
        elif isinstance(message, pb.SpeechStarted):
            await self._emit(speech_started=relay.speech_started(message))
        elif isinstance(message, pb.UtteranceEnd):
            if (utterance_end := relay.utterance_end(message)) is not None:
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

    async def _emit(self, **response: object) -> None:
        await self._respond(pb.StreamTranscribeResponse(**response))  # type: ignore[arg-type]

    async def _respond(self, response: pb.StreamTranscribeResponse) -> None:
        write = self._write
        assert write is not None
        try:
            async with self._write_lock:
                await write(response)
        except GatewayError:
            raise
        except Exception as exc:
            # gRPC refuses writes to a call that ended (the client cancelled, the server stops):
            # no response can reach it any more, and the upstream is dropped without a flush.
            raise ClientCancelledError(
                f"the call ended before a response could be written ({exc!r})"
            ) from exc
        self._counts.responses += 1
