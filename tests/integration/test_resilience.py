"""Upstream failures: retries, replay without losing or repeating a word, one time base, bounds.

Counter audio (see tests.support.standin) makes every transcript exact: block k is the word
``w<k>`` at [k, k+1) x BLOCK_SECONDS, so a lost, repeated or mistimed word is visible.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from transcribe.v1 import transcribe_pb2 as pb

from tests.conftest import TIMING
from tests.integration.conftest import (
    LINEAR16,
    collect,
    expect_error,
    requests,
    running_gateway,
    status_detail,
    words,
)
from tests.support.standin import (
    BLOCK_BYTES,
    BLOCK_SECONDS,
    DeepgramStandIn,
    Plan,
    counter_audio,
    wait_closed,
)

S = grpc.StatusCode
BLOCKS = 40


def counter_requests(
    blocks: int = BLOCKS, config: pb.StreamingConfig = LINEAR16
) -> list[pb.StreamTranscribeRequest]:
    return requests(config, *(counter_audio(k, 1) for k in range(blocks)))


def assert_exact_transcript(responses: list[pb.StreamTranscribeResponse], blocks: int = BLOCKS) -> None:
    """Every block's word exactly once, in order, at its true time."""
    got = words(responses)
    assert [w.word for w in got] == [f"w{k}" for k in range(blocks)]
    for k, word in enumerate(got):
        assert (word.start_seconds, word.end_seconds) == (at(k), at(k + 1)), word
    results = [r.result for r in responses if r.WhichOneof("response") == "result"]
    starts = [r.start_seconds for r in results]
    assert starts == sorted(starts), "result times go backwards"


def at(block: int) -> float:
    return round(block * BLOCK_SECONDS, 6)


def events(responses: list[pb.StreamTranscribeResponse]) -> list[pb.UpstreamEvent]:
    return [r.upstream_event for r in responses if r.WhichOneof("response") == "upstream_event"]


def resume_point(error: grpc.RpcError) -> pb.ResumePoint:
    return status_detail(error, pb.ResumePoint)


async def test_close_1011_mid_stream_replays_without_loss_or_repeat() -> None:
    """A 1011 close after 12 blocks: reconnect, replay the uncommitted blocks, one time base."""
    async with DeepgramStandIn([Plan(close_after_blocks=12)]) as standin:
        async with running_gateway(standin.url) as gw:
            responses = await collect(gw.stub, counter_requests())
    assert_exact_transcript(responses)
    reconnecting, reconnected = events(responses)
    assert reconnecting.reconnecting.attempt == 1
    assert reconnecting.reconnecting.reason == "close 1011"
    assert reconnecting.reconnecting.committed_seconds == at(10)
    assert reconnected.reconnected.upstream_request_id == standin.connections[1].request_id
    assert reconnected.reconnected.attempts == 1
    # The second connection starts a second (the default pre-roll) or more before the cursor.
    assert standin.connections[1].audio.startswith(counter_audio(0, 1))
    summary = responses[-1].summary
    assert summary.reconnect_count == 1
    assert list(summary.upstream_request_ids) == [c.request_id for c in standin.connections]
    assert summary.audio_received_seconds == at(BLOCKS)
    assert summary.audio_replayed_seconds == reconnected.reconnected.replayed_audio_seconds > 0
    assert summary.audio_relayed_seconds == round(at(BLOCKS) + summary.audio_replayed_seconds, 6)


async def test_replay_starts_exactly_at_the_cursor_without_preroll() -> None:
    """With no pre-roll, the new connection gets exactly the uncommitted audio."""
    async with DeepgramStandIn([Plan(close_after_blocks=12)]) as standin:
        async with running_gateway(standin.url, replay_preroll_s=0) as gw:
            responses = await collect(gw.stub, counter_requests())
    assert_exact_transcript(responses)
    assert standin.connections[1].audio.startswith(counter_audio(10, 1))


@pytest.mark.parametrize("preroll", [0.0, 0.35, 1.0])
async def test_dropped_tcp_connections_many_times(preroll: float) -> None:
    """Five abrupt TCP drops (1006) at different points: still every word once, in time."""
    plans = [Plan(drop_after_blocks=n) for n in (3, 7, 1, 9, 4)]
    async with DeepgramStandIn(plans) as standin:
        async with running_gateway(standin.url, replay_preroll_s=preroll) as gw:
            responses = await collect(gw.stub, counter_requests())
    assert_exact_transcript(responses)
    assert [e.reconnecting.reason for e in events(responses) if e.HasField("reconnecting")] == [
        "close 1006"
    ] * 5
    assert responses[-1].summary.reconnect_count == 5
    assert standin.handshakes == 6


async def test_handshake_429_and_503_runs_are_retried() -> None:
    """Refused handshakes are retried with backoff until one succeeds: attempts are counted."""
    plans = [Plan(reject_status=429), Plan(reject_status=503), Plan(reject_status=503)]
    async with DeepgramStandIn(plans) as standin:
        async with running_gateway(standin.url) as gw:
            responses = await collect(gw.stub, counter_requests(10))
    assert standin.handshakes == 4
    assert responses[0].session_started.upstream_request_id == standin.connections[3].request_id
    assert_exact_transcript(responses, 10)


async def test_retries_exhausted_is_unavailable_with_the_resume_point() -> None:
    """When every retry fails, the stream ends UNAVAILABLE and says where to resume."""
    plans = [Plan(close_after_blocks=12)] + [Plan(reject_status=503)] * 10
    async with DeepgramStandIn(plans) as standin:
        async with running_gateway(standin.url, retry_max_attempts=3) as gw:
            error, received = await expect_error(gw, counter_requests())
    assert error.code() == S.UNAVAILABLE
    assert "HTTP 503" in (error.details() or "")
    assert "after 3 attempts" in (error.details() or "")
    assert standin.handshakes == 1 + 3
    point = resume_point(error)
    assert point.committed_seconds == at(10)
    assert point.committed_bytes == 10 * BLOCK_BYTES
    # How much of the audio the client had sent when the retries ran out depends on the machine's
    # speed; the point reports what was received, a whole number of blocks past the cursor.
    assert at(12) <= point.received_seconds <= at(BLOCKS)
    assert round(point.received_seconds / at(1), 6).is_integer()
    assert [w.word for w in words(received)] == [f"w{k}" for k in range(10)]


async def test_429_after_retries_is_resource_exhausted() -> None:
    async with DeepgramStandIn(default=Plan(reject_status=429)) as standin:
        async with running_gateway(standin.url, retry_max_attempts=4) as gw:
            error, _ = await expect_error(gw, counter_requests(5))
    assert error.code() == S.RESOURCE_EXHAUSTED
    assert standin.handshakes == 4


async def test_retry_budget_is_bounded_in_time() -> None:
    """The time bound stops retrying even when attempts remain."""
    async with DeepgramStandIn(default=Plan(reject_status=503)) as standin:
        async with running_gateway(
            standin.url,
            retry_max_attempts=1000,
            retry_max_elapsed_s=0.5,
            retry_initial_backoff_s=0.05,
            retry_max_backoff_s=0.1,
        ) as gw:
            error, _ = await expect_error(gw, counter_requests(5))
    assert error.code() == S.UNAVAILABLE
    assert 2 <= standin.handshakes < 100


async def test_non_retryable_failures_are_not_retried() -> None:
    """401, 402, 400 at the handshake and 1008 mid-stream each end the stream after one attempt."""
    cases = [
        (Plan(reject_status=401), S.FAILED_PRECONDITION),
        (Plan(reject_status=402), S.RESOURCE_EXHAUSTED),
        (Plan(reject_status=400), S.INVALID_ARGUMENT),
        (Plan(close_after_blocks=2, close_code=1008, close_reason="DATA-0000"), S.INVALID_ARGUMENT),
    ]
    for plan, code in cases:
        async with DeepgramStandIn(default=plan) as standin:
            async with running_gateway(standin.url) as gw:
                error, _ = await expect_error(gw, counter_requests(5))
        assert error.code() == code, plan
        assert standin.handshakes == 1, plan


async def test_401_after_a_reconnect_ends_the_stream() -> None:
    """A key revoked mid-session: the reconnect's 401 is final, not retried."""
    async with DeepgramStandIn([Plan(close_after_blocks=5), Plan(reject_status=401)]) as standin:
        async with running_gateway(standin.url) as gw:
            error, received = await expect_error(gw, counter_requests(20))
    assert error.code() == S.FAILED_PRECONDITION
    assert standin.handshakes == 2
    assert [e.WhichOneof("event") for e in events(received)] == ["reconnecting"]


async def test_flapping_upstream_spends_one_budget() -> None:
    """Connections that open and die before answering anything count against the same budget."""
    async with DeepgramStandIn(default=Plan(drop_after_blocks=0)) as standin:
        async with running_gateway(standin.url, retry_max_attempts=4) as gw:
            error, _ = await expect_error(gw, counter_requests(5))
    assert error.code() == S.UNAVAILABLE
    assert standin.handshakes == 4


async def test_stalled_upstream_is_replaced() -> None:
    """An upstream that takes audio but answers nothing is dropped by the watchdog and replaced."""
    async with DeepgramStandIn([Plan(stall_after_blocks=12)]) as standin:
        async with running_gateway(standin.url, stall_timeout_s=0.5) as gw:
            responses = await collect(gw.stub, counter_requests())
    assert_exact_transcript(responses)
    assert events(responses)[0].reconnecting.reason == "stalled"


async def test_full_replay_buffer_holds_the_client_then_gives_up() -> None:
    """With the upstream answering nothing, a fast client fills the replay buffer: RESOURCE_EXHAUSTED."""
    async with DeepgramStandIn(default=Plan(transcribe=False)) as standin:
        async with running_gateway(
            standin.url, replay_buffer_bytes=64 * 1024, backpressure_timeout_s=0.3
        ) as gw:
            error, _ = await expect_error(gw, counter_requests(100))
    assert error.code() == S.RESOURCE_EXHAUSTED
    assert "real-time pace" in (error.details() or "")
    assert len(standin.connections[0].audio) <= 64 * 1024 + BLOCK_BYTES


async def test_replay_buffer_is_trimmed_as_results_commit() -> None:
    """A long stream with a small buffer works as long as results keep committing."""
    async with DeepgramStandIn() as standin:
        async with running_gateway(
            standin.url, replay_buffer_bytes=64 * 1024, backpressure_timeout_s=5
        ) as gw:
            responses = await collect(gw.stub, counter_requests(200))
    assert_exact_transcript(responses, 200)


async def test_half_close_during_a_reconnect_delivers_every_final() -> None:
    """The client finishes while the gateway is reconnecting: nothing it sent is lost."""
    plans = [Plan(drop_after_blocks=15), Plan(reject_status=503), Plan(reject_status=503)]
    async with DeepgramStandIn(plans) as standin:
        async with running_gateway(standin.url, retry_initial_backoff_s=0.1, retry_max_backoff_s=0.2) as gw:
            responses = await collect(gw.stub, counter_requests(20))
    assert_exact_transcript(responses, 20)
    assert standin.connections[-1].texts[-1] == {"type": "CloseStream"}


async def test_client_cancel_during_a_reconnect_stops_retrying() -> None:
    """Cancelling while the gateway retries ends the call and stops the retries."""
    plans = [Plan(drop_after_blocks=2)]
    gate = asyncio.Event()

    async def endless() -> AsyncIterator[pb.StreamTranscribeRequest]:
        for request in counter_requests(5):
            yield request
        await gate.wait()

    async with DeepgramStandIn(plans, default=Plan(reject_status=503)) as standin:
        async with running_gateway(
            standin.url, retry_initial_backoff_s=0.2, retry_max_backoff_s=0.2, retry_max_attempts=100
        ) as gw:
            call = gw.stub.StreamTranscribe(endless())
            async for response in call:
                if response.WhichOneof("response") == "upstream_event":
                    break
            call.cancel()
            assert await call.code() == S.CANCELLED
            await asyncio.sleep(0.5 * TIMING)
            handshakes = standin.handshakes
            await asyncio.sleep(0.6 * TIMING)
            assert standin.handshakes == handshakes, "the gateway kept retrying after the cancel"
            gate.set()


async def test_containerised_audio_is_replayed_from_its_first_byte() -> None:
    """Containerised audio cannot be cut at the cursor: it is resent whole and repeats are dropped."""
    async with DeepgramStandIn([Plan(close_after_blocks=12)]) as standin:
        async with running_gateway(standin.url) as gw:
            responses = await collect(gw.stub, counter_requests(config=pb.StreamingConfig()))
    assert_exact_transcript(responses)
    assert standin.connections[1].audio == counter_audio(0, BLOCKS)


async def test_containerised_audio_past_the_buffer_cannot_be_replayed() -> None:
    """Once containerised audio outgrows the replay buffer, a failure ends the stream UNAVAILABLE."""
    plans = [Plan(close_after_blocks=30)]
    async with DeepgramStandIn(plans) as standin:
        async with running_gateway(standin.url, replay_buffer_bytes=64 * 1024) as gw:
            error, received = await expect_error(gw, counter_requests(config=pb.StreamingConfig()))
    assert error.code() == S.UNAVAILABLE
    assert "cannot be replayed" in (error.details() or "")
    assert standin.handshakes == 1
    assert resume_point(error).committed_bytes == 0
    assert [w.word for w in words(received)] == [f"w{k}" for k in range(30)]


async def test_resuming_with_an_offset_keeps_one_time_base() -> None:
    """A client resuming a failed stream with start_offset_seconds gets times on the old base."""
    config = pb.StreamingConfig()
    config.CopyFrom(LINEAR16)
    config.start_offset_seconds = at(10)
    async with DeepgramStandIn() as standin:
        async with running_gateway(standin.url) as gw:
            responses = await collect(gw.stub, requests(config, counter_audio(10, 5)))
    got = words(responses)
    assert [(w.word, w.start_seconds) for w in got] == [(f"w{k}", at(k)) for k in range(10, 15)]
    await wait_closed(standin.connections[0])
