"""Property tests of the relay core: random sequences of client and upstream events, played
against a model upstream that transcribes counter audio as the stand-in does (block k is the
word ``w<k>``, timed from the start of its own connection).

Invariants, after every event: the replay log's memory stays within the cap plus a constant;
the connections made since the last progress stay within the budget; the words delivered are
exactly w0, w1, ... (none lost, none repeated). At the end: every call ends, within the
attempts and the time the budget allows.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from transcribe.v1 import transcribe_pb2 as pb

from gateway.audiolog import ENTRY_COST, MAX_CONTROLS_PER_GAP
from gateway.errors import UpstreamClosedError, UpstreamHandshakeError, UpstreamStalledError
from gateway.protocol import deepgram
from gateway.protocol.relay import Finished, GiveUp, Reconnect, Relay, RelayLimits
from gateway.upstream.retry import RetryPolicy

RATE = 16_000
BLOCK_S = 0.08
BLOCK_BYTES = int(RATE * BLOCK_S) * 2
CAP = 64 * 1024
MAX_CHUNK = 4_000
POLICY = RetryPolicy(max_attempts=4, max_elapsed_s=20.0, initial_backoff_s=0.1, max_backoff_s=1.0)
STALL_S = 5.0
CONFIG = pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=RATE)
# The most the log may hold beyond the cap: one message admitted into an empty log, and the
# controls between two chunks of audio.
SLACK = MAX_CHUNK + ENTRY_COST + MAX_CONTROLS_PER_GAP * (ENTRY_COST + 40)
FINALIZES = [deepgram.finalize_message(None), deepgram.finalize_message(0)]


def counter_stream(blocks: int) -> bytes:
    return b"".join(struct.pack("<h", n) * (BLOCK_BYTES // 2) for n in range(blocks))


STREAM = counter_stream(400)


@dataclass
class Upstream:
    """One model connection: what it received, and the blocks it has transcribed."""

    audio: bytearray = field(default_factory=bytearray)
    reported: int = 0
    closing: bool = False


@dataclass
class World:
    relay: Relay
    now: float = 0.0
    conn: Upstream | None = None
    offset: int = 0  # bytes of STREAM admitted
    words: list[int] = field(default_factory=list)
    over: object = None

    def decide(self, decision: Reconnect | GiveUp | Finished) -> None:
        self.conn = None
        if isinstance(decision, Reconnect):
            assert decision.delay_s >= 0
            self.now += decision.delay_s  # the session sleeps the backoff
        else:
            self.over = decision

    def connect(self, ok: bool) -> None:
        if self.conn is not None or self.over is not None:
            return
        self.relay.connecting(self.now)
        if ok:
            self.relay.opened(self.now)
            self.conn = Upstream()
        else:
            self.decide(self.relay.failed(UpstreamHandshakeError(503, "", None), self.now))

    def send(self, frames: int) -> None:
        if self.conn is None:
            return
        for i in range(frames):
            due = self.relay.audio_due(self.now)
            if due is not None:
                # Coalescing holds the audio, never for longer than its setting.
                assert self.now < due <= self.now + self.relay.limits.coalesce_s, (self.now, due)
                return
            # Odd steps send the audio waiting as one batch, as the session's sender does.
            batch = self.relay.take_audio(self.now, BLOCK_BYTES * (frames - i)) if frames % 2 else []
            if batch:
                self.conn.audio += b"".join(batch)
                continue
            payload = self.relay.take(self.now)
            if payload is None:
                return
            if payload == deepgram.CLOSE_STREAM:
                self.conn.closing = True
            elif isinstance(payload, bytes):
                self.conn.audio += payload

    def answer(self, blocks: int) -> None:
        """Final results for up to ``blocks`` more complete blocks, in one result."""
        conn = self.conn
        if conn is None:
            return
        complete = len(conn.audio) // BLOCK_BYTES
        upto = min(conn.reported + blocks, complete)
        self.relay.answered_now()
        if upto > conn.reported:
            self._result(conn, upto)
        if conn.closing and upto == complete:
            # Flushed: the upstream closes 1000; the session is done with it.
            self.over = Finished()
            self.conn = None

    def _result(self, conn: Upstream, upto: int) -> None:
        words = []
        for index in range(conn.reported, upto):
            (value,) = struct.unpack_from("<h", conn.audio, index * BLOCK_BYTES)
            words.append(
                pb.Word(word=f"w{value}", start_seconds=index * BLOCK_S, end_seconds=(index + 1) * BLOCK_S)
            )
        start = conn.reported * BLOCK_S
        result = pb.Result(
            start_seconds=start,
            duration_seconds=upto * BLOCK_S - start,
            is_final=True,
            channel_count=1,
            alternatives=[pb.Alternative(words=words)],
        )
        conn.reported = upto
        out = self.relay.result(result)
        if out is not None:
            self.words += [int(w.word[1:]) for w in out.alternatives[0].words]

    def fail(self) -> None:
        if self.conn is not None:
            self.decide(self.relay.failed(UpstreamClosedError(1011, "NET-0000", None), self.now))

    def wait(self, seconds: float) -> None:
        self.now += seconds
        if self.conn is not None and self.relay.stalled(self.now):
            self.decide(self.relay.failed(UpstreamStalledError(seconds, None), self.now))

    def audio(self, size: int) -> None:
        relay = self.relay
        if relay.input_done or self.offset + size > len(STREAM):
            return
        if relay.admits(size):  # else the client is held back, and sends it again later
            relay.audio_in(STREAM[self.offset : self.offset + size], self.now)
            self.offset += size

    def direct(self, size: int) -> None:
        """Audio as the session's reader takes it while the sender is caught up: straight onto
        the connection when the core lets it through, else into the log for the sender."""
        relay = self.relay
        if relay.input_done or self.offset + size > len(STREAM) or not relay.admits(size):
            return
        data = STREAM[self.offset : self.offset + size]
        self.offset += size
        if self.conn is not None and relay.audio_through(data, self.now):
            self.conn.audio += data
        else:
            relay.audio_in(data, self.now)

    def check(self) -> None:
        assert self.relay.log.memory <= CAP + SLACK, self.relay.log.memory
        assert self.relay.budget.attempts <= POLICY.max_attempts
        assert self.words == list(range(len(self.words))), self.words


def world(coalesce_s: float = 0.0) -> World:
    return World(
        Relay(
            CONFIG,
            RelayLimits(
                replay_buffer_bytes=CAP,
                replay_preroll_s=1.0,
                stall_timeout_s=STALL_S,
                retry=POLICY,
                coalesce_s=coalesce_s,
            ),
        )
    )


# Audio coalescing off, shorter than a block, and longer than most waits of the scripts.
coalescing = st.sampled_from([0.0, 0.05, 0.5])


chunk_sizes = st.sampled_from([2, 7, 100, 1000, BLOCK_BYTES, 3 * BLOCK_BYTES + 5, MAX_CHUNK])
events = st.one_of(
    st.tuples(st.just("audio"), chunk_sizes),
    # Audio the reader sends itself when nothing waits (the caught-up stream's every frame).
    st.tuples(st.just("direct"), chunk_sizes),
    st.tuples(st.just("finalize"), st.integers(0, 1)),
    # Tiny messages sent one by one as they come (the bookkeeping-heavy case).
    st.tuples(st.just("trickle"), st.integers(1, 400)),
    st.tuples(st.just("connect"), st.booleans()),
    st.tuples(st.just("send"), st.integers(1, 50)),
    st.tuples(st.just("answer"), st.integers(1, 20)),
    st.tuples(st.just("fail"), st.just(0)),
    st.tuples(st.just("wait"), st.sampled_from([0.01, 0.5, 3.0, STALL_S])),
)


def play(w: World, script: list[tuple[str, object]]) -> None:
    for kind, arg in script:
        if w.over is not None:
            return
        if kind == "audio":
            w.audio(int(arg))  # type: ignore[call-overload]
        elif kind == "direct":
            w.direct(int(arg))  # type: ignore[call-overload]
        elif kind == "trickle":
            for _ in range(int(arg)):  # type: ignore[call-overload]
                w.audio(2)
                w.send(1)
        elif kind == "finalize":
            w.relay.control_in(FINALIZES[int(arg)])  # type: ignore[call-overload]
        elif kind == "connect":
            w.connect(bool(arg))
        elif kind == "send":
            w.send(int(arg))  # type: ignore[call-overload]
        elif kind == "answer":
            w.answer(int(arg))  # type: ignore[call-overload]
        elif kind == "fail":
            w.fail()
        else:
            w.wait(float(arg))  # type: ignore[arg-type]
        w.check()


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=120), coalescing)
def test_invariants_hold_and_a_healthy_upstream_ends_the_call_with_every_word(
    script: list[tuple[str, object]], coalesce_s: float
) -> None:
    w = world(coalesce_s)
    play(w, script)
    if w.over is not None:
        return
    # The client half-closes; the upstream is healthy from now on.
    w.relay.input_ended()
    for _ in range(200):
        if w.over is not None:
            break
        w.connect(True)
        w.send(10_000)
        w.answer(10_000)
        w.check()
    assert w.over is not None, "the call never ended"
    if isinstance(w.over, Finished):
        # No committed word lost: every complete block the client sent was delivered.
        assert len(w.words) == w.offset // BLOCK_BYTES


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=120), st.booleans(), coalescing)
def test_every_call_ends_within_the_budget_against_an_upstream_that_fails(
    script: list[tuple[str, object]], silent: bool, coalesce_s: float
) -> None:
    """From any state, an upstream that fails (at once, or by never answering) ends the call
    within the attempts and the time the budget allows."""
    w = world(coalesce_s)
    play(w, script)
    if w.over is not None:
        return
    w.relay.input_ended()
    started = w.now
    connections = 0
    while w.over is None:
        assert connections <= POLICY.max_attempts + 1, "more connections than the budget"
        if w.conn is None:
            w.connect(True)
            connections += 1
            continue
        w.send(10_000)
        if silent:
            check = w.relay.next_check()
            assert check is not None, "a silent upstream is never abandoned"
            w.wait(max(check - w.now, 0.0))
        else:
            w.answer(0)  # it answers something (nothing new), then fails
            if w.conn is not None:
                w.fail()
        w.check()
    assert isinstance(w.over, GiveUp | Finished)
    assert w.now - started <= STALL_S + POLICY.max_elapsed_s + POLICY.max_backoff_s
