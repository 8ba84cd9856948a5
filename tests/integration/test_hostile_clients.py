"""Hostile and clumsy clients, over real sockets: every limit bounds what it claims.

A Finalize flood without audio, tiny audio messages, streams that never send their config,
and a client that does not read its responses while the gateway drains. Memory is measured
with tracemalloc, counting what code under ``gateway/`` allocated and still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import Reason
from tests.conftest import TIMING
from tests.integration.conftest import LINEAR16, expect_error, running_gateway, status_detail
from tests.support.standin import DeepgramStandIn, Plan, counter_audio

S = grpc.StatusCode
LIMIT_S = 20 * TIMING
_GATEWAY_FILES = [tracemalloc.Filter(True, "*/gateway/*")]


@contextlib.contextmanager
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def gateway_held_bytes() -> int:
    """Bytes allocated by the gateway's own code and not freed yet."""
    snapshot = tracemalloc.take_snapshot().filter_traces(_GATEWAY_FILES)
    return sum(stat.size for stat in snapshot.statistics("filename"))


def error_reason(error: grpc.RpcError) -> str:
    from google.rpc import error_details_pb2

    return str(status_detail(error, error_details_pb2.ErrorInfo).reason)


async def test_a_finalize_flood_without_audio_holds_bounded_memory() -> None:
    """50,000 Finalize controls and no audio: repeated controls collapse, memory stays flat."""
    flood = 50_000
    done = asyncio.Event()

    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        finalize = pb.StreamTranscribeRequest(control=pb.Control(finalize=pb.Finalize()))
        for _ in range(flood):
            yield finalize
        # One block after the flood: its word proves the gateway has read the whole flood.
        yield pb.StreamTranscribeRequest(audio=counter_audio(0, 1))
        yield finalize
        await done.wait()

    with traced():
        async with DeepgramStandIn() as standin:
            async with running_gateway(standin.url) as gw:
                call = gw.stub.StreamTranscribe(reqs())
                before = None
                async for response in call:
                    if response.HasField("session_started"):
                        before = gateway_held_bytes()
                    if response.HasField("result") and response.result.is_final:
                        break
                held = gateway_held_bytes()
                done.set()
                assert [r async for r in call][-1].HasField("summary")
    assert before is not None
    growth = held - before
    # The old gateway kept every Finalize: about 140 bytes each, 7 MB here.
    assert growth < 512 * 1024, f"{growth} bytes held after {flood} Finalize controls"
    # Collapsed, not relayed 50,000 times.
    assert len(standin.connections[0].texts) < 100


async def test_tiny_audio_messages_are_bounded_by_the_replay_cap_bookkeeping_included() -> None:
    """2-byte audio messages to an upstream that never answers: the replay cap (64 KiB) bounds
    the memory held, bookkeeping included (the old gateway held ~70 times the cap)."""
    cap = 64 * 1024
    messages = 40_000
    peak = 0
    reqs = [pb.StreamTranscribeRequest(config=LINEAR16)]
    reqs += [pb.StreamTranscribeRequest(audio=b"\1\0") for _ in range(messages)]

    with traced():
        async with DeepgramStandIn(default=Plan(transcribe=False)) as standin:
            async with running_gateway(
                standin.url,
                replay_buffer_bytes=cap,
                backpressure_timeout_s=1.0 * TIMING,
                stall_timeout_s=60,
            ) as gw:
                base = gateway_held_bytes()

                async def sample() -> None:
                    nonlocal peak
                    while True:
                        await asyncio.sleep(1.0)
                        peak = max(peak, gateway_held_bytes() - base)

                sampler = asyncio.create_task(sample())
                error, _ = await asyncio.wait_for(expect_error(gw, reqs), LIMIT_S * 3)
                sampler.cancel()
    assert error.code() == S.RESOURCE_EXHAUSTED
    # Bookkeeping takes its share of the cap, but most of it still holds audio.
    relayed = len(standin.connections[0].audio)
    assert relayed > cap // 4, f"the client was held back after {relayed} bytes of audio"
    assert peak < 3 * cap, f"{peak} bytes held for a {cap} byte replay cap"


async def _drain(call: grpc.aio.StreamStreamCall) -> list[pb.StreamTranscribeResponse]:
    return [r async for r in call]


async def _read_rest(call: grpc.aio.StreamStreamCall) -> list[pb.StreamTranscribeResponse]:
    received = []
    while (response := await call.read()) != grpc.aio.EOF:
        received.append(response)
    return received


async def test_a_stream_that_never_sends_its_config_times_out() -> None:
    """No first message within --config-timeout-s: DEADLINE_EXCEEDED, reason CONFIG_TIMEOUT."""
    hold = asyncio.Event()

    async def silent() -> AsyncIterator[pb.StreamTranscribeRequest]:
        await hold.wait()
        yield pb.StreamTranscribeRequest(config=LINEAR16)

    async with DeepgramStandIn() as standin:
        async with running_gateway(standin.url, config_timeout_s=0.3 * TIMING) as gw:
            started = time.monotonic()
            call = gw.stub.StreamTranscribe(silent())
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(_drain(call), LIMIT_S)
            took = time.monotonic() - started
            hold.set()
    assert info.value.code() == S.DEADLINE_EXCEEDED
    assert error_reason(info.value) == Reason.CONFIG_TIMEOUT
    assert took < LIMIT_S
    assert standin.handshakes == 0


async def test_streams_waiting_for_their_config_count_against_max_streams() -> None:
    """Two streams that never send their config fill --max-streams 2: a third is refused."""
    hold = asyncio.Event()

    async def silent() -> AsyncIterator[pb.StreamTranscribeRequest]:
        await hold.wait()
        yield pb.StreamTranscribeRequest(config=LINEAR16)

    async with DeepgramStandIn() as standin:
        async with running_gateway(standin.url, max_streams=2) as gw:
            waiting = [gw.stub.StreamTranscribe(silent()) for _ in range(2)]
            servicer = gw.server._servicer
            assert servicer is not None
            # The calls start asynchronously: wait (bounded) until both are waiting in the gateway.
            async with asyncio.timeout(LIMIT_S):
                while servicer._waiting < 2:  # noqa: ASYNC110 (a counter of the servicer's, no event to wait on)
                    await asyncio.sleep(0.01)
            # The third writes nothing: grpc-python reports a write that races with the server's
            # refusal as INTERNAL "Internal error from Core" instead of the refusal
            # (grpc/grpc#36066), and the refusal comes before any config is read.
            third = gw.stub.StreamTranscribe(silent())
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(_drain(third), LIMIT_S)
            hold.set()
            for call in waiting:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await asyncio.wait_for(_drain(call), LIMIT_S)
    assert info.value.code() == S.RESOURCE_EXHAUSTED
    assert "limit of 2" in (info.value.details() or "")


async def test_drain_grace_is_a_hard_bound_with_a_client_that_does_not_read() -> None:
    """A client that sends audio and never reads its (large) responses: the drain still ends
    within its grace, and every call is ended."""
    big = {"channel": {"alternatives": [{"transcript": "x" * 8000, "confidence": 1.0, "words": []}]}}
    grace_s = 1.0 * TIMING
    stop = asyncio.Event()

    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        for k in range(1500):
            yield pb.StreamTranscribeRequest(audio=counter_audio(k, 1))
        await stop.wait()

    plan = Plan(blocks_per_result=1, result_overrides=big)
    async with DeepgramStandIn(default=plan) as standin:
        async with running_gateway(standin.url, drain_grace_s=grace_s) as gw:
            servicer = gw.server._servicer
            assert servicer is not None
            call = gw.stub.StreamTranscribe(reqs())
            # Wait until the relay is stuck behind the client: the stand-in's answers fill the
            # session's queue and gRPC's window, the session stops reading the upstream, and
            # the audio reaching the stand-in stops growing.
            deadline = time.monotonic() + LIMIT_S
            relayed = -1
            while not standin.connections or len(standin.connections[0].audio) != relayed:
                assert time.monotonic() < deadline, "the relay never got stuck"
                relayed = len(standin.connections[0].audio) if standin.connections else -1
                await asyncio.sleep(0.5 * TIMING)
            assert relayed > 300 * 2560
            started = time.monotonic()
            await asyncio.wait_for(gw.server.drain(), grace_s + 3 * TIMING)
            took = time.monotonic() - started
            # The cancelled handlers finish their clean-up (closing the upstream) just after.
            await asyncio.wait_for(servicer.idle.wait(), 2 * TIMING)
            stop.set()
            call.cancel()
    assert took < grace_s + 1.5 * TIMING, took


async def test_drain_ends_a_hung_stream_at_the_grace_with_its_resume_point() -> None:
    """A stream whose upstream hangs is ended at the end of the grace: UNAVAILABLE with a
    ResumePoint, as the client reads on."""
    grace_s = 0.8 * TIMING
    hold = asyncio.Event()

    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        yield pb.StreamTranscribeRequest(audio=counter_audio(0, 7))
        await hold.wait()

    async with DeepgramStandIn(default=Plan(stall_after_blocks=0)) as standin:
        async with running_gateway(standin.url, drain_grace_s=grace_s, stall_timeout_s=60) as gw:
            call = gw.stub.StreamTranscribe(reqs())
            assert (await call.read()).HasField("session_started")
            deadline = time.monotonic() + LIMIT_S
            while not standin.connections or not standin.connections[0].audio:
                assert time.monotonic() < deadline, "no audio reached the upstream"
                await asyncio.sleep(0.02)
            drain = asyncio.create_task(gw.server.drain())
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(_read_rest(call), grace_s + 3 * TIMING)
            await asyncio.wait_for(drain, 3 * TIMING)
            hold.set()
    assert info.value.code() == S.UNAVAILABLE
    assert "grace is over" in (info.value.details() or "")
    point = status_detail(info.value, pb.ResumePoint)
    assert point.received_seconds > 0
