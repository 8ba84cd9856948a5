"""The relay core: every decision of one stream's relay, without I/O.

The session (``gateway.session``) owns the tasks, timers, sockets and metrics; it tells this
object what happened and asks it what to do, the way python-websockets keeps its protocol out
of asyncio. Events in:

- from the client: :meth:`Relay.admits` / :meth:`Relay.audio_in`, :meth:`Relay.control_in`,
  :meth:`Relay.input_ended`;
- from the upstream: :meth:`Relay.connecting`, :meth:`Relay.opened`, :meth:`Relay.take` (a
  frame leaves), :meth:`Relay.answered`, :meth:`Relay.result`, :meth:`Relay.failed`.

Decisions out: the next frame to send (the replay log's cursor, then CloseStream once), whether
a client's audio fits (else the session holds the client back), when the current connection
must be abandoned (:meth:`Relay.next_check`, :meth:`Relay.stalled`), and, after a failure,
:class:`Reconnect` after a backoff, :class:`GiveUp` with the error the call ends with, or
:class:`Finished`.

Bounds, each a property of this object: the replay log's memory (audio, controls and
bookkeeping) stays within the replay cap plus one message; the connections made without
progress stay within the retry budget; an outage, stall and flush included, ends within
``retry.max_elapsed_s``; every time is finite and within the audio received.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from transcribe.v1 import transcribe_pb2 as pb

from gateway.audiolog import ENTRY_COST, AudioLog
from gateway.errors import GatewayError, Reason, RetriesExhaustedError, SessionError, UpstreamError
from gateway.protocol import deepgram
from gateway.protocol.audio import RawFormat, raw_format
from gateway.protocol.outcome import Outcome, classify
from gateway.protocol.timeline import FAR_SECONDS, Timeline, clamp
from gateway.upstream.retry import RetryBudget, RetryPolicy

# Replays start on a multiple of this (see Relay.replay_position).
REPLAY_ALIGNMENT_S: Final = 0.16
# How far past the audio received an upstream's time may reach (frame rounding, padding).
TIME_SLACK_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """The bounds of one stream's relay (no defaults: they come from the gateway's settings)."""

    replay_buffer_bytes: int
    replay_preroll_s: float
    stall_timeout_s: float
    retry: RetryPolicy
    # Raw audio is held until this much waits (or the first of it has waited this long); 0: never.
    coalesce_s: float


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Open a new connection after ``delay_s``; ``outcome`` says why the last one ended."""

    delay_s: float
    outcome: Outcome
    opened: bool  # the failed connection had opened (a mid-stream failure, not a handshake)


@dataclass(frozen=True, slots=True)
class GiveUp:
    """End the call with ``error``."""

    error: GatewayError


@dataclass(frozen=True, slots=True)
class Finished:
    """Nothing is left to relay: the call ends well."""


Decision = Reconnect | GiveUp | Finished


class Relay:
    """The bookkeeping of one stream: replay log, cursor, time base, retry budget, bounds."""

    def __init__(
        self,
        config: pb.StreamingConfig,
        limits: RelayLimits,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.limits = limits
        self.format: RawFormat | None = raw_format(config)
        channels = (config.channels or 1) if config.multichannel else 1
        self.timeline = Timeline(channels, config.start_offset_seconds)
        self.log = AudioLog()
        self.budget = RetryBudget(limits.retry, rng)
        # What the log's memory may reach before a client's audio (one entry more) is held.
        self._memory_cap = limits.replay_buffer_bytes - ENTRY_COST
        self._offset = config.start_offset_seconds
        # Containerised audio can only be replayed from its first byte (the header), so it
        # stays replayable only while all of it fits the replay buffer.
        self.replayable = True
        self.input_done = False
        # Totals over the stream, for the summary and metrics.
        self.sent_bytes = 0
        self.replayed_bytes = 0
        self.connections = 0
        # The current connection.
        self.open = False
        self.answered = False
        self.close_sent = False
        self.close_sent_at: float | None = None
        self.last_sent = 0.0
        # When the oldest frame the upstream has not answered yet was sent.
        self.waiting_since: float | None = None
        self._committed_at_failure = 0.0
        self._attempt_started = 0.0
        # When the unsent audio started waiting, while coalescing holds it (None: send at once).
        self._held_since: float | None = None

    # --- client events -------------------------------------------------------------------

    def admits(self, n_bytes: int) -> bool:
        """Whether ``n_bytes`` more audio fit the replay cap now; if not, the client is held
        until a commit frees room (or, for unreplayable audio, until it has been sent)."""
        log = self.log
        cap = self._memory_cap
        if log.memory + n_bytes <= cap or not log.entries:
            return True
        if self.format is None and self.replayable:
            self.replayable = False
        if not self.replayable:
            # Nothing can be replayed any more: only what is still unsent is worth keeping.
            log.trim(log.received_bytes)
            return log.memory + n_bytes <= cap or not log.entries
        return False

    def audio_in(self, data: bytes, now: float) -> None:
        log = self.log
        if self.limits.coalesce_s and not log.unsent:
            self._held_since = now
        log.append_audio(data)

    def audio_through(self, data: bytes, now: float) -> bool:
        """A client's audio (admitted) that the session sends at once, if nothing waits before it
        and coalescing does not hold it: then it is logged as sent (what :meth:`audio_in` and
        :meth:`take_audio` would do, in one step, for every frame of a caught-up stream) and
        True. False, having done nothing, otherwise: :meth:`audio_in` it, and the sender takes it."""
        log = self.log
        if not self.open or self.limits.coalesce_s or log.unsent:
            return False
        log.append_sent(data)
        self.sent_bytes += len(data)
        self.last_sent = now
        if self.waiting_since is None:
            self.waiting_since = now
        return True

    def audio_due(self, now: float) -> float | None:
        """When coalescing holds the waiting audio, the time it must leave by; None when it
        leaves now (or nothing waits). Audio is never held behind a control, past the end of the
        input, after a reconnect (the replay goes at once), or when its rate is unknown."""
        held_since = self._held_since
        if held_since is None:
            return None
        due = held_since + self.limits.coalesce_s
        waiting = self.log.unsent_audio_bytes()
        if (
            due <= now
            or waiting is None
            or self.input_done
            or self.format is None
            or self.format.seconds(waiting) >= self.limits.coalesce_s
        ):
            return None
        return due

    def control_in(self, text: str) -> bool:
        """A control from the client; False when it only repeats one (dropped)."""
        return self.log.append_control(text)

    def input_ended(self) -> None:
        self.input_done = True

    # --- upstream events -----------------------------------------------------------------

    def connecting(self, now: float) -> None:
        """A connection is being tried: it spends one attempt of the budget."""
        self._attempt_started = now
        self.budget.attempt()
        self.connections += 1

    def opened(self, now: float) -> int:
        """A connection opened: rewind to the first uncommitted audio and start its time base
        there. Returns the audio bytes that will be sent again."""
        log = self.log
        if self.format is not None:
            log.trim(self.replay_position())
            self.timeline.start_connection(self.format.seconds(log.start_position))
        # Containerised audio is resent from its first byte; the timeline drops what repeats.
        resent = log.rewind()
        if resent:
            self._held_since = None  # a replay leaves at once
        self.replayed_bytes += resent
        self.open = True
        self.answered = False
        self.close_sent = False
        self.close_sent_at = None
        self.last_sent = now
        self.waiting_since = None
        return resent

    def take(self, now: float) -> bytes | str | None:
        """The next frame for the upstream (audio, a control, CloseStream once the input has
        ended and all was sent), or None when there is nothing to send now."""
        payload = self.log.take()
        if not self.log.unsent:
            self._held_since = None
        if payload is None:
            if not self.input_done or self.close_sent:
                return None
            self.close_sent = True
            self.close_sent_at = now
            payload = deepgram.CLOSE_STREAM
        elif not isinstance(payload, str):
            self.sent_bytes += len(payload)
        self.last_sent = now
        if self.waiting_since is None:
            self.waiting_since = now
        return payload

    def take_audio(self, now: float, max_bytes: int) -> list[bytes]:
        """The audio frames waiting next, up to the next control and within ``max_bytes`` (at
        least one if any): frames the session may send as one message. Empty when the next
        entry is not audio or nothing waits (then :meth:`take` says what comes next)."""
        log = self.log
        frames = log.take_audio(max_bytes)
        if not log.unsent:
            self._held_since = None
        if frames:
            self.sent_bytes += sum(map(len, frames))
            self.last_sent = now
            if self.waiting_since is None:
                self.waiting_since = now
        return frames

    def keepalive_sent(self, now: float) -> None:
        self.last_sent = now

    def answered_now(self) -> None:
        """The upstream sent a message."""
        self.answered = True
        self.waiting_since = None

    def result(self, message: pb.Result) -> pb.Result | None:
        """Rebase a result onto the stream; None when it only repeats what was delivered.

        A final result commits: the log is trimmed, and a cursor past the one of the last
        failure is progress, which gives the retry budget back."""
        timeline = self.timeline
        timeline.horizon = self._horizon()
        result = timeline.result(message)
        if result is None or not result.is_final:
            return result
        committed = timeline.committed_seconds
        if self.format is not None:
            self.log.trim(self.replay_position())
        if committed > self._committed_at_failure:
            self.budget.progress()
        return result

    def speech_started(self, message: pb.SpeechStarted) -> pb.SpeechStarted:
        self.timeline.horizon = self._horizon()
        return self.timeline.speech_started(message)

    def utterance_end(self, message: pb.UtteranceEnd) -> pb.UtteranceEnd | None:
        self.timeline.horizon = self._horizon()
        return self.timeline.utterance_end(message)

    def next_check(self) -> float | None:
        """When :meth:`stalled` may next be true (monotonic seconds), or None."""
        stall = self.limits.stall_timeout_s
        candidates = []
        if self.waiting_since is not None:
            candidates.append(self.waiting_since + stall)
        if self.close_sent_at is not None:
            candidates.append(self.close_sent_at + stall)
        deadline = self.budget.deadline
        if deadline is not None and self.open:
            candidates.append(deadline)
        return min(candidates) if candidates else None

    def stalled(self, now: float) -> bool:
        """Whether the current connection must be abandoned now: a frame unanswered for the
        stall timeout, a flush as long, or an outage's deadline passed with work outstanding.

        A connection that stands through the outage's deadline with nothing outstanding (an
        idle client) has nothing to prove: the outage is over."""
        stall = self.limits.stall_timeout_s
        if self.waiting_since is not None and now >= self.waiting_since + stall:
            return True
        if self.close_sent_at is not None and now >= self.close_sent_at + stall:
            return True
        deadline = self.budget.deadline
        if deadline is not None and self.open and now >= deadline:
            outstanding = self.format is not None and not self._all_committed()
            if self.waiting_since is not None or outstanding:
                return True
            self.budget.progress()
        return False

    def failed(self, error: UpstreamError, now: float) -> Decision:
        """A connection failed or was refused: reconnect (after how long), or give up."""
        opened = self.open
        since = self.waiting_since if opened else self._attempt_started
        self.open = False
        self.waiting_since = None
        self.close_sent_at = None
        if self.input_done and self._all_committed():
            return Finished()
        outcome = classify(error)
        if not outcome.retryable:
            return GiveUp(error)
        if not self.replayable:
            return GiveUp(
                SessionError(
                    outcome.code,
                    Reason.UPSTREAM_NOT_REPLAYABLE,
                    f"{outcome.message}; the containerised audio cannot be replayed on a new "
                    "connection (it outgrew the replay buffer): resume from the ResumePoint",
                )
            )
        if opened:
            self._committed_at_failure = self.timeline.committed_seconds
            self.budget.attempts_this_reconnect = 0
        delay = self.budget.failed(now, since)
        if delay is None:
            return GiveUp(RetriesExhaustedError(error, self.budget.attempts))
        return Reconnect(delay, outcome, opened)

    # --- what the session reports ----------------------------------------------------------

    @property
    def received_seconds(self) -> float:
        return self.seconds(self.log.received_bytes)

    def seconds(self, n_bytes: int) -> float:
        if self.format is not None:
            return self.format.seconds(n_bytes)
        # Containerised audio: only the upstream knows its duration; report what it transcribed.
        return self.timeline.committed_seconds if n_bytes else 0.0

    def resume_point(self) -> pb.ResumePoint:
        """Where a client resumes; always computable, whatever the upstream sent."""
        received = self.received_seconds
        committed = clamp(self.timeline.committed_seconds, FAR_SECONDS)
        if self.format is not None:
            committed = min(committed, received)
        committed_bytes = self.format.byte_offset(committed) if self.format else 0
        offset = self._offset if math.isfinite(self._offset) else 0.0
        return pb.ResumePoint(
            committed_seconds=round(committed + offset, 6),
            committed_bytes=min(committed_bytes, self.log.received_bytes),
            received_seconds=round(received + offset, 6),
        )

    def replay_position(self) -> int:
        """Where a replay starts: a little before the committed cursor, so that the new
        connection hears the first uncommitted words in context; the timeline drops the words
        this repeats."""
        assert self.format is not None
        committed = min(self.timeline.committed_seconds, self.received_seconds)
        start = max(committed - self.limits.replay_preroll_s, 0.0)
        # Recognisers analyse audio in fixed frames counted from the connection's first byte
        # (10, 20, 32 ms...). Starting the replay on a common multiple of those frame sizes
        # puts the new connection's frames where the old one's were, so the same audio is
        # heard the same way and transcribed with the same words.
        start = math.floor(start / REPLAY_ALIGNMENT_S + 1e-9) * REPLAY_ALIGNMENT_S
        return self.format.byte_offset(start)

    def _horizon(self) -> float:
        if self.format is None:
            return FAR_SECONDS
        return self.format.seconds(self.log.received_bytes) + TIME_SLACK_S

    def _all_committed(self) -> bool:
        """Every final of the audio received is delivered (raw audio only: for containerised
        audio the gateway cannot tell)."""
        if self.format is None:
            return False
        committed = self.format.byte_offset(self.timeline.committed_seconds)
        return committed >= self.log.received_bytes and not self.log.unsent
