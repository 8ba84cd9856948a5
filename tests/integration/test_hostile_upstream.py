"""Hostile upstreams, over real sockets: each must end the call within the documented bounds.

An upstream that fails at the same point of the audio on every connection, that sends a frame
over the gateway's frame limit, that takes audio and never answers, that never finishes its
flush, or that sends times no audio has (``"duration": "inf"``, NaN, 1e300). Each test bounds
its own run time, so a gateway that reconnects forever fails it instead of hanging.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

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
from tests.support.standin import BLOCK_BYTES, BLOCK_SECONDS, DeepgramStandIn, Plan, counter_audio

S = grpc.StatusCode
# Long enough for a bounded gateway under load, far shorter than an unbounded one takes.
LIMIT_S = 20 * TIMING
CHATTER = '{"type":"SpeechStarted","channel":[0,1],"timestamp":0.0}'


def counter_requests(blocks: int) -> list[pb.StreamTranscribeRequest]:
    return requests(LINEAR16, *(counter_audio(k, 1) for k in range(blocks)))


def at(block: int) -> float:
    return round(block * BLOCK_SECONDS, 6)


async def test_failing_at_the_same_audio_on_every_connection_ends_unavailable() -> None:
    """Every connection closes 1011 on receiving block 12: the connections made after the last
    commit are bounded by --retry-max-attempts, then UNAVAILABLE with the ResumePoint."""
    async with DeepgramStandIn(default=Plan(fail_at_block=12)) as standin:
        async with running_gateway(standin.url, retry_max_attempts=4) as gw:
            error, received = await asyncio.wait_for(expect_error(gw, counter_requests(30)), LIMIT_S)
    assert error.code() == S.UNAVAILABLE, error
    assert "after 4 attempts" in (error.details() or "")
    # Connection 1 committed blocks 0-9 (progress), then 4 attempts without progress: 1 + 4.
    assert standin.handshakes == 5
    point = status_detail(error, pb.ResumePoint)
    assert point.committed_seconds == at(10)
    assert point.committed_bytes == 10 * BLOCK_BYTES
    assert [w.word for w in words(received)] == [f"w{k}" for k in range(10)]


async def test_a_frame_over_the_limit_at_the_same_audio_ends_the_call() -> None:
    """Every connection answers block 12 with a 17 MB frame: bounded, and the call ends."""
    plan = Plan(fail_at_block=12, huge_frame_bytes=17 * 1024 * 1024)
    async with DeepgramStandIn(default=plan) as standin:
        async with running_gateway(standin.url, retry_max_attempts=3) as gw:
            error, received = await asyncio.wait_for(expect_error(gw, counter_requests(30)), LIMIT_S)
    assert error.code() == S.UNAVAILABLE, error
    assert "over the gateway's 16 MiB limit" in (error.details() or ""), error.details()
    assert standin.handshakes <= 1 + 3
    assert [w.word for w in words(received)] == [f"w{k}" for k in range(10)]


async def test_backoff_separates_every_two_connections() -> None:
    """Connections that open, answer and then fail are still spaced by the backoff."""
    async with DeepgramStandIn(default=Plan(fail_at_block=12)) as standin:
        async with running_gateway(
            standin.url, retry_max_attempts=4, retry_initial_backoff_s=0.2, retry_max_backoff_s=0.2
        ) as gw:
            started = time.monotonic()
            await asyncio.wait_for(expect_error(gw, counter_requests(30)), LIMIT_S)
            elapsed = time.monotonic() - started
    assert standin.handshakes == 5
    # Full jitter draws each of the 4 waits from [0, 0.2 s]: their sum is above 0 almost
    # surely; the old gateway reconnected at once after a connection that had answered.
    assert elapsed < LIMIT_S
    assert elapsed > 0.02


async def test_an_upstream_that_takes_audio_and_never_answers_gives_up_in_time() -> None:
    """No answer at all: the stall is detected and the whole outage, stall time included, ends
    within --retry-max-elapsed-s (the old gateway took max-attempts x stall-timeout)."""
    stall_s, elapsed_s = 1.0 * TIMING, 2.0 * TIMING
    # Reads the first frame, then nothing more (not even CloseStream), and never answers.
    async with DeepgramStandIn(default=Plan(stall_after_blocks=0)) as standin:
        async with running_gateway(
            standin.url, stall_timeout_s=stall_s, retry_max_elapsed_s=elapsed_s, retry_max_attempts=6
        ) as gw:
            started = time.monotonic()
            error, _ = await asyncio.wait_for(expect_error(gw, counter_requests(5)), LIMIT_S)
            took = time.monotonic() - started
    assert error.code() == S.UNAVAILABLE, error
    assert took < elapsed_s + 1.0 * TIMING, took
    assert standin.handshakes <= 3
    assert status_detail(error, pb.ResumePoint).received_seconds == at(5)


async def test_a_flush_that_never_ends_ends_well_once_every_final_is_delivered() -> None:
    """After CloseStream the upstream keeps sending messages and never closes: once every final
    of the audio is delivered, the half-closed call ends OK after the flush bound."""
    plan = Plan(endless_flush_message=CHATTER)
    async with DeepgramStandIn(default=plan) as standin:
        async with running_gateway(standin.url, stall_timeout_s=0.5 * TIMING) as gw:
            responses = await asyncio.wait_for(collect(gw.stub, counter_requests(10)), LIMIT_S)
    assert [w.word for w in words(responses)] == [f"w{k}" for k in range(10)]
    assert responses[-1].HasField("summary")
    assert standin.handshakes == 1


async def test_a_flush_that_never_ends_with_audio_uncommitted_ends_unavailable() -> None:
    """The same upstream, with the last two blocks never finalised: the flush is bounded like a
    stall, the reconnects by the budget, and the call ends UNAVAILABLE with its ResumePoint."""
    plan = Plan(endless_flush_message=CHATTER)
    async with DeepgramStandIn(default=plan) as standin:
        async with running_gateway(
            standin.url, stall_timeout_s=0.5 * TIMING, retry_max_elapsed_s=1.5 * TIMING
        ) as gw:
            error, received = await asyncio.wait_for(expect_error(gw, counter_requests(12)), LIMIT_S)
    assert error.code() == S.UNAVAILABLE, error
    assert [w.word for w in words(received)] == [f"w{k}" for k in range(10)]
    point = status_detail(error, pb.ResumePoint)
    assert (point.committed_seconds, point.received_seconds) == (at(10), at(12))


@pytest.mark.parametrize(
    "overrides",
    [
        {"duration": "inf"},
        {"duration": "nan"},
        {"start": 1e300},
        {"duration": 1e300},
        {"start": "-inf"},
    ],
    ids=["duration-inf", "duration-nan", "start-1e300", "duration-1e300", "start-minus-inf"],
)
async def test_absurd_upstream_times_never_keep_a_call_from_ending(overrides: dict[str, Any]) -> None:
    """Results whose times no audio has: the call ends, with finite, clamped times, and a
    ResumePoint within the audio received when it fails."""
    plans = [Plan(result_overrides=overrides, close_after_blocks=12)]
    async with DeepgramStandIn(plans, default=Plan(result_overrides=overrides)) as standin:
        async with running_gateway(standin.url) as gw:
            call = collect(gw.stub, counter_requests(20))
            try:
                responses = await asyncio.wait_for(call, LIMIT_S)
            except grpc.aio.AioRpcError as exc:
                point = status_detail(exc, pb.ResumePoint)
                assert 0 <= point.committed_seconds <= point.received_seconds <= at(20)
                return
    results = [r.result for r in responses if r.HasField("result")]
    for result in results:
        assert math.isfinite(result.start_seconds) and math.isfinite(result.duration_seconds)
        assert 0 <= result.start_seconds <= at(20) + 1
        assert result.start_seconds + result.duration_seconds <= at(20) + 1
    assert responses[-1].HasField("summary")
    assert standin.handshakes <= 1 + 6
