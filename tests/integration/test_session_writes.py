"""A session writes its responses itself (the call's ``context.write``, or the browser
listener's socket), from the task that made them: what happens when a write fails, and when a
drain comes before the session runs. A real stand-in upstream over a real websocket; the
``write`` is the test's, in place of a gRPC call's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from pydantic import SecretStr
from transcribe.v1 import transcribe_pb2 as pb

from gateway.config import Settings
from gateway.errors import ClientCancelledError, Reason, SessionError, SessionFailedError
from gateway.metrics import Metrics
from gateway.server import session_options
from gateway.session import Session
from tests.conftest import TIMING
from tests.support.grpc_gateway import LINEAR16, TEST_KEY
from tests.support.standin import DeepgramStandIn, Plan, counter_audio

LIMIT_S = 10 * TIMING


def _session(url: str) -> Session:
    settings = Settings(upstream_url=url, deepgram_api_key=SecretStr(TEST_KEY), retry_initial_backoff_s=0.01)
    return Session(LINEAR16, session_options(settings, url), Metrics())


class _Reader:
    """A client that reads every response at once: what the session wrote, in order."""

    def __init__(self) -> None:
        self.written: list[pb.StreamTranscribeResponse] = []

    async def write(self, response: pb.StreamTranscribeResponse) -> None:
        self.written.append(response)


async def _audio_then_wait(blocks: int, hold: asyncio.Event) -> AsyncIterator[pb.StreamTranscribeRequest]:
    for k in range(blocks):
        yield pb.StreamTranscribeRequest(audio=counter_audio(k, 1))
    await hold.wait()


async def test_a_write_that_fails_ends_the_session_cancelled_and_drops_the_upstream() -> None:
    """The call went away under a write: the session ends (ClientCancelledError, no hang, no
    INTERNAL) and closes its upstream connection."""
    written: list[pb.StreamTranscribeResponse] = []

    async def write(response: pb.StreamTranscribeResponse) -> None:
        if response.HasField("result"):
            raise RuntimeError("the call is gone")
        written.append(response)

    hold = asyncio.Event()
    async with DeepgramStandIn(default=Plan(blocks_per_result=1)) as standin:
        session = _session(standin.url)
        with pytest.raises(SessionFailedError) as info:
            await asyncio.wait_for(session.run(_audio_then_wait(3, hold), write), LIMIT_S)
        await asyncio.wait_for(standin.connections[0].closed.wait(), LIMIT_S)
    assert isinstance(info.value.cause, ClientCancelledError)
    assert "the call is gone" in str(info.value.cause)
    assert [r.WhichOneof("response") for r in written] == ["session_started"]


async def test_a_drain_before_the_session_runs_still_tells_the_client_and_flushes() -> None:
    """A drain that reaches a session between its creation and its run (the browser listener
    registers sessions at the handshake): going_away is still written first, the input is
    closed, and the call ends UNAVAILABLE draining after the flush."""
    client = _Reader()
    hold = asyncio.Event()
    async with DeepgramStandIn() as standin:
        session = _session(standin.url)
        await session.drain(LIMIT_S)
        with pytest.raises(SessionFailedError) as info:
            await asyncio.wait_for(session.run(_audio_then_wait(0, hold), client.write), LIMIT_S)
        texts = standin.connections[0].texts
    cause = info.value.cause
    assert isinstance(cause, SessionError)
    assert (cause.code, cause.reason) == (grpc.StatusCode.UNAVAILABLE, Reason.DRAINING)
    assert "grace is over" not in str(cause)
    kinds = [r.WhichOneof("response") for r in client.written]
    assert kinds == ["upstream_event", "session_started", "summary"], kinds
    assert client.written[0].upstream_event.HasField("going_away")
    assert {"type": "CloseStream"} in texts


async def test_a_drain_whose_grace_ended_before_the_session_ran_ends_it_at_once() -> None:
    client = _Reader()
    hold = asyncio.Event()
    async with DeepgramStandIn() as standin:
        session = _session(standin.url)
        await session.drain(0.0)
        await asyncio.sleep(0.05)  # the grace's timer fires
        with pytest.raises(SessionFailedError) as info:
            await asyncio.wait_for(session.run(_audio_then_wait(1, hold), client.write), LIMIT_S)
        handshakes = standin.handshakes
    assert "grace is over" in str(info.value.cause)
    assert handshakes == 0
    assert not client.written


async def test_the_drain_grace_ends_a_session_whose_write_is_stuck() -> None:
    """A client that stops reading holds the session's task in a write: the drain's timer
    still ends the session at its grace, with the drain's status, not a bare cancellation."""
    stuck = asyncio.Event()

    async def write(response: pb.StreamTranscribeResponse) -> None:
        if response.HasField("result"):
            stuck.set()
            await asyncio.Event().wait()  # never returns: the client does not read

    hold = asyncio.Event()
    async with DeepgramStandIn(default=Plan(blocks_per_result=1)) as standin:
        session = _session(standin.url)
        run = asyncio.create_task(session.run(_audio_then_wait(3, hold), write))
        await asyncio.wait_for(stuck.wait(), LIMIT_S)
        await session.drain(0.2 * TIMING)
        with pytest.raises(SessionFailedError) as info:
            await asyncio.wait_for(run, LIMIT_S)
    assert "grace is over" in str(info.value.cause)
    assert info.value.resume.received_seconds > 0
