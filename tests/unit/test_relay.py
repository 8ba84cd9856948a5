"""The relay core, case by case: retry budget, backoff, outage and flush bounds, admission,
replay rewind, and what absurd upstream times do. No sockets, no event loop: a fake clock."""

from __future__ import annotations

import math

import grpc
import pytest
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import (
    Reason,
    RetriesExhaustedError,
    SessionError,
    UpstreamClosedError,
    UpstreamHandshakeError,
    UpstreamStalledError,
)
from gateway.protocol import deepgram
from gateway.protocol.relay import TIME_SLACK_S, Finished, GiveUp, Reconnect, Relay, RelayLimits
from gateway.upstream.retry import RetryPolicy

LINEAR16 = pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000)
SECOND = 32_000  # bytes of linear16 at 16 kHz
CLOSE_1011 = UpstreamClosedError(1011, "NET-0000", "r")
POLICY = RetryPolicy(max_attempts=4, max_elapsed_s=30.0, initial_backoff_s=0.2, max_backoff_s=1.0)


def relay(
    config: pb.StreamingConfig = LINEAR16,
    *,
    policy: RetryPolicy = POLICY,
    cap: int = 8 * SECOND,
    replay_preroll_s: float = 1.0,
    stall_timeout_s: float = 25.0,
    coalesce_s: float = 0.0,
) -> Relay:
    return Relay(
        config,
        RelayLimits(
            replay_buffer_bytes=cap,
            replay_preroll_s=replay_preroll_s,
            stall_timeout_s=stall_timeout_s,
            retry=policy,
            coalesce_s=coalesce_s,
        ),
        rng=lambda: 1.0,  # the jitter's ceiling: deterministic delays
    )


def final(start: float, end: float, words: int = 1) -> pb.Result:
    step = (end - start) / words
    return pb.Result(
        start_seconds=start,
        duration_seconds=end - start,
        is_final=True,
        channel_count=1,
        alternatives=[
            pb.Alternative(
                words=[
                    pb.Word(word=f"w{i}", start_seconds=start + i * step, end_seconds=start + (i + 1) * step)
                    for i in range(words)
                ]
            )
        ],
    )


def connect(r: Relay, now: float = 0.0) -> int:
    r.connecting(now)
    return r.opened(now)


def send_all(r: Relay, now: float = 0.0) -> list[bytes | str]:
    out = []
    while (payload := r.take(now)) is not None:
        out.append(payload)
    return out


# --- the retry budget ------------------------------------------------------------------------


def test_a_connection_that_answers_but_makes_no_progress_spends_the_budget() -> None:
    """The old gateway gave the budget back on any message; only a commit past the cursor does."""
    r = relay()
    r.audio_in(b"\0" * 2 * SECOND, 0.0)
    decisions = []
    for attempt in range(10):
        connect(r, attempt)
        send_all(r, attempt)
        r.answered_now()  # it answers (say, an interim), then fails at the same point
        decision = r.failed(CLOSE_1011, attempt + 0.5)
        decisions.append(decision)
        if isinstance(decision, GiveUp):
            break
    assert [type(d) for d in decisions] == [Reconnect, Reconnect, Reconnect, GiveUp]
    error = decisions[-1].error  # type: ignore[union-attr]
    assert isinstance(error, RetriesExhaustedError) and error.attempts == 4


def test_progress_gives_the_budget_back() -> None:
    """Connections that each commit past the last failure's cursor never run out of budget."""
    r = relay()
    r.audio_in(b"\0" * 8 * SECOND, 0.0)
    for n in range(10):
        connect(r, n)
        send_all(r, n)
        base = r.log.start_position / SECOND
        start = r.timeline.committed_seconds - base
        assert r.result(final(start, start + 0.5)) is not None
        assert r.budget.attempts == 0
        assert isinstance(r.failed(CLOSE_1011, n + 0.5), Reconnect), n


@pytest.mark.parametrize(
    ("answered", "delays"),
    [
        (False, [0.2, 0.4, 0.8]),
        (True, [0.2, 0.4, 0.8]),
    ],
    ids=["refused", "answered-then-failed"],
)
def test_backoff_grows_between_every_two_connections(answered: bool, delays: list[float]) -> None:
    """Full jitter over a capped exponential; a connection that answered gets one too."""
    r = relay()
    r.audio_in(b"\0" * SECOND, 0.0)
    got = []
    for n in range(3):
        connect(r, n)
        send_all(r, n)
        if answered:
            r.answered_now()
        decision = r.failed(CLOSE_1011, n)
        assert isinstance(decision, Reconnect)
        got.append(round(decision.delay_s, 6))
    assert got == delays


def test_backoff_is_capped() -> None:
    r = relay(
        policy=RetryPolicy(max_attempts=20, max_elapsed_s=1000, initial_backoff_s=0.2, max_backoff_s=1.0)
    )
    delays = []
    for n in range(8):
        r.connecting(n)
        decision = r.failed(UpstreamHandshakeError(503, "", None), n)
        assert isinstance(decision, Reconnect)
        delays.append(decision.delay_s)
    assert max(delays) == 1.0


def test_refused_handshakes_spend_the_same_budget() -> None:
    r = relay()
    decisions = []
    for n in range(5):
        r.connecting(n)
        decisions.append(r.failed(UpstreamHandshakeError(503, "", None), n))
    assert [type(d) for d in decisions][:4] == [Reconnect, Reconnect, Reconnect, GiveUp]


def test_non_retryable_failures_give_up_with_the_error_itself() -> None:
    r = relay()
    r.connecting(0)
    error = UpstreamHandshakeError(401, "", None)
    assert r.failed(error, 0) == GiveUp(error)


# --- time bounds -----------------------------------------------------------------------------


def test_an_upstream_that_never_answers_ends_within_max_elapsed_stall_included() -> None:
    """Stall detected after the stall timeout; the outage counts from the first unanswered
    frame, so the replacement connection is abandoned at max_elapsed, not after its own stall."""
    r = relay(
        policy=RetryPolicy(max_attempts=6, max_elapsed_s=30, initial_backoff_s=0.2, max_backoff_s=5.0),
        stall_timeout_s=25.0,
    )
    r.audio_in(b"\0" * SECOND, 0.0)
    connect(r, 0.0)
    send_all(r, 0.0)
    assert r.next_check() == 25.0
    assert not r.stalled(24.9) and r.stalled(25.0)
    first = r.failed(UpstreamStalledError(25, "r"), 25.0)
    assert isinstance(first, Reconnect)
    now = 25.0 + first.delay_s
    connect(r, now)
    send_all(r, now)
    assert r.next_check() == 30.0
    assert r.stalled(30.0)
    assert isinstance(r.failed(UpstreamStalledError(5, "r"), 30.0), GiveUp)


def test_no_reconnect_starts_after_the_outage_deadline() -> None:
    r = relay(
        policy=RetryPolicy(max_attempts=100, max_elapsed_s=1.0, initial_backoff_s=0.5, max_backoff_s=0.5)
    )
    r.connecting(0.0)
    assert isinstance(r.failed(UpstreamHandshakeError(503, "", None), 0.2), Reconnect)
    r.connecting(0.7)
    assert isinstance(r.failed(UpstreamHandshakeError(503, "", None), 0.7), GiveUp)


def test_a_flush_that_never_ends_is_bounded_even_with_answers() -> None:
    r = relay(stall_timeout_s=2.0)
    r.audio_in(b"\0" * SECOND, 0.0)
    r.input_ended()
    connect(r)
    assert send_all(r, 1.0)[-1] == deepgram.CLOSE_STREAM
    for t in (1.5, 2.0, 2.5):
        r.answered_now()  # the upstream chatters, never closes
        assert not r.stalled(t)
    assert r.stalled(3.0)


def test_an_idle_client_after_a_reconnect_is_not_a_stall() -> None:
    """Nothing outstanding when the outage's deadline comes: the outage is over, no failure."""
    r = relay(policy=RetryPolicy(max_attempts=6, max_elapsed_s=5.0, initial_backoff_s=0.2, max_backoff_s=5.0))
    r.audio_in(b"\0" * SECOND, 0.0)
    connect(r)
    send_all(r)
    r.result(final(0.0, 0.5))
    r.result(final(0.5, 1.0))
    assert isinstance(r.failed(CLOSE_1011, 1.0), Reconnect)
    connect(r, 1.1)
    send_all(r, 1.1)  # the pre-roll
    r.answered_now()  # its words again (dropped as repeats)
    assert not r.stalled(10.0)
    assert r.budget.deadline is None and r.budget.attempts == 0


def test_a_failure_with_every_final_delivered_after_the_input_ended_is_the_end() -> None:
    r = relay()
    r.audio_in(b"\0" * SECOND, 0.0)
    r.input_ended()
    connect(r)
    send_all(r)
    r.result(final(0.0, 1.0))
    assert r.failed(CLOSE_1011, 1.0) == Finished()


def test_close_stream_is_sent_once_after_the_input_ends() -> None:
    r = relay()
    r.audio_in(b"\1\0" * 100, 0.0)
    connect(r)
    assert send_all(r) == [b"\1\0" * 100]
    r.input_ended()
    assert send_all(r) == [deepgram.CLOSE_STREAM]
    assert send_all(r) == []


# --- admission and replay ----------------------------------------------------------------------


def test_admission_counts_bookkeeping_and_admits_one_message_into_an_empty_log() -> None:
    r = relay(cap=64 * 1024)
    assert r.admits(10 * 64 * 1024)  # empty: any one message
    while r.admits(2):
        r.audio_in(b"\0\0", 0.0)
        r.take(0.0)
    assert r.log.memory <= 64 * 1024
    assert r.log.held_bytes > 16 * 1024


def test_containerised_audio_past_the_cap_stops_being_replayable() -> None:
    r = relay(pb.StreamingConfig(), cap=64 * 1024)
    connect(r)
    for _ in range(40):
        assert r.admits(4096)
        r.audio_in(b"\0" * 4096, 0.0)
        send_all(r)
    assert not r.replayable
    decision = r.failed(CLOSE_1011, 1.0)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, SessionError)
    assert decision.error.reason == Reason.UPSTREAM_NOT_REPLAYABLE
    assert decision.error.code == grpc.StatusCode.UNAVAILABLE


def test_reconnect_replays_from_the_aligned_preroll_before_the_cursor() -> None:
    r = relay(replay_preroll_s=0.5)
    r.audio_in(b"\0" * 3 * SECOND, 0.0)
    connect(r)
    send_all(r)
    r.result(final(0.0, 2.0))
    assert isinstance(r.failed(CLOSE_1011, 1.0), Reconnect)
    # 2.0 - 0.5 = 1.5 s, down to a multiple of 0.16 s: 1.44 s.
    assert connect(r, 1.0) == 3 * SECOND - int(1.44 * SECOND)
    assert r.timeline.result(final(0.0, 0.56)) is None  # the pre-roll's words repeat: dropped
    out = r.result(final(0.56, 1.0))
    assert out is not None and out.start_seconds == 2.0


# --- absurd upstream times -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "duration"),
    [(0.0, math.inf), (0.0, math.nan), (1e300, 1.0), (0.0, 1e300), (-math.inf, 1.0), (math.nan, math.nan)],
)
def test_absurd_times_are_clamped_and_the_resume_point_always_exists(start: float, duration: float) -> None:
    r = relay()
    r.audio_in(b"\0" * SECOND, 0.0)
    connect(r)
    send_all(r)
    result = pb.Result(start_seconds=start, duration_seconds=duration, is_final=True, channel_count=1)
    out = r.result(result)
    if out is not None:
        assert math.isfinite(out.start_seconds) and math.isfinite(out.duration_seconds)
        assert 0 <= out.start_seconds + out.duration_seconds <= 1.0 + TIME_SLACK_S
    assert r.timeline.committed_seconds <= 1.0 + TIME_SLACK_S
    point = r.resume_point()
    assert 0 <= point.committed_seconds <= point.received_seconds == 1.0
    assert point.committed_bytes <= SECOND
    # And the next, sane result still gets through once audio moves past the clamp.
    r.audio_in(b"\0" * SECOND, 0.0)
    send_all(r)
    assert r.result(final(1.6, 2.0)) is not None


def test_a_result_on_an_absurd_channel_allocates_nothing() -> None:
    r = relay()
    result = final(0.0, 0.5)
    result.channel_index = 100_000_000
    assert r.result(result) is None


# --- audio coalescing (--coalesce-audio-ms) ----------------------------------------------------

FRAME = SECOND // 50  # 20 ms


@pytest.mark.parametrize(
    ("coalesce_s", "frames", "at", "due"),
    [
        (0.0, 1, 0.0, None),  # off: audio leaves at once
        (0.1, 1, 0.0, 0.1),  # 20 ms waiting of 100 ms: held until 100 ms after the first frame
        (0.1, 4, 0.06, 0.1),  # 80 ms waiting, later: the same deadline (the first frame's)
        (0.1, 5, 0.08, None),  # 100 ms waiting: it leaves
        (0.1, 1, 0.1, None),  # the deadline has come
    ],
)
def test_coalescing_holds_audio_until_enough_waits_or_the_first_frame_has_waited(
    coalesce_s: float, frames: int, at: float, due: float | None
) -> None:
    r = relay(coalesce_s=coalesce_s)
    r.opened(0.0)
    for k in range(frames):
        r.audio_in(b"\0" * FRAME, at * k / max(frames - 1, 1))
    assert r.audio_due(at) == due


def test_coalescing_never_holds_audio_behind_a_control_the_end_or_a_replay() -> None:
    r = relay(coalesce_s=0.1)
    r.opened(0.0)
    r.audio_in(b"\0" * FRAME, 0.0)
    assert r.audio_due(0.0) == 0.1
    r.control_in(deepgram.finalize_message(None))
    assert r.audio_due(0.0) is None, "a Finalize waits behind the audio"
    assert len(r.take_audio(0.0, 10 * SECOND)) == 1
    assert r.take(0.0) == deepgram.finalize_message(None)
    # A new frame after all was sent starts a new hold...
    r.audio_in(b"\0" * FRAME, 0.5)
    assert r.audio_due(0.5) == pytest.approx(0.6)
    # ...which a reconnect ends: the replay leaves at once.
    r.failed(UpstreamClosedError(1011, "NET-0000", None), 0.52)
    r.connecting(0.6)
    r.opened(0.6)
    assert r.audio_due(0.6) is None
    # And so does the end of the input.
    while r.take(0.6) is not None:  # the replay: audio, Finalize, audio
        pass
    r.audio_in(b"\0" * FRAME, 0.7)
    assert r.audio_due(0.7) is not None
    r.input_ended()
    assert r.audio_due(0.7) is None


def test_containerised_audio_is_never_held() -> None:
    r = relay(pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_UNSPECIFIED), coalesce_s=0.1)
    r.opened(0.0)
    r.audio_in(b"RIFF" + b"\0" * 100, 0.0)
    assert r.audio_due(0.0) is None


# --- audio sent straight through ---------------------------------------------------------------


def test_audio_goes_straight_through_only_when_nothing_waits_before_it() -> None:
    r = relay()
    assert not r.audio_through(b"\1" * FRAME, 0.0), "no connection is open"
    connect(r)
    assert r.audio_through(b"\1" * FRAME, 0.1)
    assert (r.sent_bytes, r.last_sent, r.waiting_since) == (FRAME, 0.1, 0.1)
    assert not r.log.unsent and r.take(0.1) is None, "it was logged as sent"
    # A control waiting for the sender: the next frame queues behind it.
    r.control_in(deepgram.finalize_message(None))
    assert not r.audio_through(b"\2" * FRAME, 0.2)
    r.audio_in(b"\2" * FRAME, 0.2)
    assert send_all(r, 0.2) == [deepgram.finalize_message(None), b"\2" * FRAME]
    assert r.audio_through(b"\3" * FRAME, 0.3)
    # Still replayable: a reconnect resends all three frames and the control, in order.
    r.failed(CLOSE_1011, 0.4)
    connect(r, 0.5)
    resent = b"".join(p for p in send_all(r, 0.5) if isinstance(p, bytes))
    assert resent == b"\1" * FRAME + b"\2" * FRAME + b"\3" * FRAME
    assert r.log.received_bytes == 3 * FRAME


def test_coalesced_audio_never_goes_straight_through() -> None:
    r = relay(coalesce_s=0.1)
    connect(r)
    assert not r.audio_through(b"\0" * FRAME, 0.0)
    r.audio_in(b"\0" * FRAME, 0.0)
    assert r.audio_due(0.0) == 0.1
