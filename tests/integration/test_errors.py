"""Errors that need no retry end the stream at once with the right status and a usable message."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import Reason
from gateway.protocol import deepgram
from tests.conftest import ROOT, TIMING
from tests.integration.conftest import (
    LINEAR16,
    TEST_KEY,
    Running,
    expect_error,
    requests,
    running_gateway,
    status_detail,
)
from tests.support.standin import DeepgramStandIn, Plan, counter_audio, wait_closed

S = grpc.StatusCode


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    return status_detail(error, error_details_pb2.ErrorInfo)


async def test_first_message_must_be_config(standin: DeepgramStandIn) -> None:
    async with running_gateway(standin.url) as gw:
        error, received = await expect_error(gw, [pb.StreamTranscribeRequest(audio=b"\0\0")])
    assert error.code() == S.INVALID_ARGUMENT
    assert error.details() == "the first request must carry config, got audio"
    assert error_info(error).reason == Reason.CONFIG_NOT_FIRST
    assert received == []
    assert standin.handshakes == 0


async def test_empty_stream_is_rejected(standin: DeepgramStandIn) -> None:
    async with running_gateway(standin.url) as gw:
        error, _ = await expect_error(gw, [])
    assert error.code() == S.INVALID_ARGUMENT
    assert "ended before its config" in (error.details() or "")
    assert error_info(error).reason == Reason.CONFIG_NOT_FIRST


async def test_second_config_is_rejected_and_upstream_closed(standin: DeepgramStandIn) -> None:
    """A second config mid-stream ends the call and drops the open upstream connection."""
    started = asyncio.Event()

    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        yield pb.StreamTranscribeRequest(audio=counter_audio(0, 1))
        await started.wait()
        yield pb.StreamTranscribeRequest(config=LINEAR16)

    async with running_gateway(standin.url) as gw:
        call = gw.stub.StreamTranscribe(reqs())
        assert (await call.read()).WhichOneof("response") == "session_started"
        started.set()
        assert await call.code() == S.INVALID_ARGUMENT
        assert "config may only be sent once" in (await call.details() or "")
        await wait_closed(standin.connections[0], 5 * TIMING)
    assert standin.connections[0].closed.is_set()
    assert {"type": "CloseStream"} not in standin.connections[0].texts


async def test_invalid_option_is_rejected_before_any_upstream_connection(standin: DeepgramStandIn) -> None:
    config = pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=500_000)
    async with running_gateway(standin.url) as gw:
        error, _ = await expect_error(gw, requests(config))
    assert error.code() == S.INVALID_ARGUMENT
    assert error.details() == "config.sample_rate: 500000 Hz is above the 192000 Hz maximum"
    info = error_info(error)
    assert (info.reason, info.metadata["field"]) == ("INVALID_CONFIG", "sample_rate")
    assert standin.handshakes == 0


async def test_upstream_400_is_invalid_argument_with_deepgrams_message() -> None:
    body = (
        '{"err_code":"Bad Request","err_msg":"No such model/language/tier combination found.",'
        '"request_id":"r"}'
    )
    async with DeepgramStandIn([Plan(reject_status=400, reject_body=body)]) as standin:
        async with running_gateway(standin.url) as gw:
            error, received = await expect_error(gw, requests(pb.StreamingConfig(model="nova-99")))
    assert error.code() == S.INVALID_ARGUMENT
    details = error.details() or ""
    assert "No such model/language/tier combination found." in details
    assert standin.connections[0].request_id in details
    assert standin.handshakes == 1
    assert received == []
    assert error_info(error).reason == Reason.UPSTREAM_CONFIG_REJECTED


async def test_upstream_rejecting_the_key_is_failed_precondition_without_the_key() -> None:
    for status in (401, 403):
        body = f'{{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials: {TEST_KEY}"}}'
        async with DeepgramStandIn([Plan(reject_status=status, reject_body=body)]) as standin:
            async with running_gateway(standin.url) as gw:
                error, _ = await expect_error(gw, requests(LINEAR16))
        assert error.code() == S.FAILED_PRECONDITION
        details = error.details() or ""
        assert "credentials" in details
        assert TEST_KEY not in details
        assert TEST_KEY not in str(error.trailing_metadata())
        assert error_info(error).reason == Reason.UPSTREAM_KEY_REJECTED
        assert standin.handshakes == 1, "a rejected key is not retried"


async def test_undecodable_audio_is_invalid_argument() -> None:
    plan = Plan(
        close_after_blocks=0,
        close_code=1008,
        close_reason="DATA-0000: the payload cannot be decoded as audio",
    )
    async with DeepgramStandIn([plan]) as standin:
        async with running_gateway(standin.url) as gw:
            error, received = await expect_error(gw, requests(pb.StreamingConfig(), b"not audio at all"))
    assert error.code() == S.INVALID_ARGUMENT
    assert "DATA-0000" in (error.details() or "")
    assert error_info(error).reason == Reason.UPSTREAM_BAD_AUDIO
    assert standin.handshakes == 1, "bad audio is not retried"
    assert received[0].WhichOneof("response") == "session_started"


async def test_client_cancel_closes_the_upstream_at_once(standin: DeepgramStandIn) -> None:
    """Cancelling the RPC drops the upstream connection right away, without waiting for results."""
    gate = asyncio.Event()

    async def endless() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        yield pb.StreamTranscribeRequest(audio=counter_audio(0, 1))
        await gate.wait()

    async with running_gateway(standin.url) as gw:
        call = gw.stub.StreamTranscribe(endless())
        first = await call.read()
        assert first.WhichOneof("response") == "session_started"
        await asyncio.wait_for(standin.connected.wait(), 5 * TIMING)
        cancelled_at = time.monotonic()
        call.cancel()
        await wait_closed(standin.connections[0], 5 * TIMING)
        elapsed = time.monotonic() - cancelled_at
        assert standin.connections[0].closed.is_set()
        assert elapsed < 2 * TIMING
        assert {"type": "CloseStream"} not in standin.connections[0].texts
        assert await call.code() == S.CANCELLED
        gate.set()


async def test_control_without_command_is_rejected(standin: DeepgramStandIn) -> None:
    async with running_gateway(standin.url) as gw:
        error, _ = await expect_error(gw, requests(LINEAR16, pb.Control()))
    assert error.code() == S.INVALID_ARGUMENT
    assert "control request has no command" in (error.details() or "")
    assert error_info(error).reason == Reason.INVALID_REQUEST


# --- requests the gateway refuses before connecting upstream ----------------------------------

METHOD = "/transcribe.v1.TranscribeService/StreamTranscribe"


async def raw_call(gw: Running, frames: list[bytes]) -> grpc.RpcError:
    """Send ``frames`` as they are (no serialisation) and return the call's error."""

    def call() -> grpc.RpcError:
        with grpc.insecure_channel(gw.server.address) as channel:
            method = channel.stream_stream(
                METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
            try:
                for _ in method(iter(frames)):
                    pass
            except grpc.RpcError as exc:
                return exc
        raise AssertionError("the call succeeded")

    return await asyncio.to_thread(call)


CORRUPT = b"\x12\x80\x40\x00"  # field 2 (audio) announcing 8192 bytes, carrying one


async def test_a_corrupt_first_message_is_invalid_argument_without_a_traceback(
    standin: DeepgramStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_gateway(standin.url) as gw:
        error = await raw_call(gw, [CORRUPT])
    assert error.code() == S.INVALID_ARGUMENT
    assert "not a valid transcribe.v1.StreamTranscribeRequest" in (error.details() or "")
    assert error_info(error).reason == Reason.INVALID_REQUEST
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert standin.handshakes == 0


async def test_a_corrupt_message_mid_stream_is_invalid_argument_without_a_traceback(
    standin: DeepgramStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    config = pb.StreamTranscribeRequest(config=LINEAR16).SerializeToString()
    audio = pb.StreamTranscribeRequest(audio=counter_audio(0, 1)).SerializeToString()
    async with running_gateway(standin.url) as gw:
        error = await raw_call(gw, [config, audio, CORRUPT])
    assert error.code() == S.INVALID_ARGUMENT
    assert error_info(error).reason == Reason.INVALID_REQUEST
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize(
    "config",
    [
        pb.StreamingConfig(model="m" * 10_000),
        pb.StreamingConfig(keyterms=["a key term"] * 5000),
    ],
    ids=["10 kB model name", "50 kB of keyterms"],
)
async def test_a_query_over_the_bound_is_invalid_argument_before_connecting(
    standin: DeepgramStandIn, config: pb.StreamingConfig
) -> None:
    """Instead of an upstream 414 reported as FAILED_PRECONDITION ("upstream URL may be wrong")."""
    async with running_gateway(standin.url) as gw:
        error, _ = await expect_error(gw, requests(config))
    assert error.code() == S.INVALID_ARGUMENT
    assert error_info(error).reason == Reason.QUERY_TOO_LONG
    assert f"over the {deepgram.MAX_QUERY_CHARS} allowed" in (error.details() or "")
    assert standin.handshakes == 0


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (pb.StreamingConfig(upstream_params={"x_option\n": "1"}), "upstream_params"),
        (pb.StreamingConfig(upstream_params={"x option": "1"}), "upstream_params"),
        (pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=1), "sample_rate"),
        (pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000, channels=21), "channels"),
    ],
)
async def test_values_outside_the_documented_ranges_are_invalid_config(
    standin: DeepgramStandIn, config: pb.StreamingConfig, field: str
) -> None:
    async with running_gateway(standin.url) as gw:
        error, _ = await expect_error(gw, requests(config))
    assert error.code() == S.INVALID_ARGUMENT
    info = error_info(error)
    assert (info.reason, info.metadata["field"]) == (Reason.INVALID_CONFIG, field)
    assert standin.handshakes == 0


# --- the one declared list of reasons ----------------------------------------------------------


def test_readme_and_proto_list_exactly_the_declared_reasons() -> None:
    """The README's reasons table and the proto's reasons comment list gateway.errors.Reason."""
    declared = [reason.value for reason in Reason]
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- reasons:.*?-->(.*?)<!-- /reasons -->", readme, re.DOTALL)
    assert table, "no reasons table in the README"
    assert re.findall(r"^\| `([A-Z0-9_]+)` \|", table.group(1), re.MULTILINE) == declared
    proto = (ROOT / "proto" / "transcribe" / "v1" / "transcribe.proto").read_text()
    comment = re.search(r"ErrorInfo reasons.*?:\n(.*?)\n  //\n", proto, re.DOTALL)
    assert comment, "no reasons comment in the proto"
    assert re.findall(r"^  //   ([A-Z0-9_]+) ", comment.group(1), re.MULTILINE) == declared


async def test_backpressure_has_its_own_reason() -> None:
    """A client held back by a full replay buffer ends RESOURCE_EXHAUSTED with BACKPRESSURE."""
    async with DeepgramStandIn(default=Plan(transcribe=False)) as standin:
        async with running_gateway(
            standin.url, replay_buffer_bytes=64 * 1024, backpressure_timeout_s=0.3
        ) as gw:
            error, _ = await expect_error(gw, requests(LINEAR16, *(counter_audio(k, 1) for k in range(40))))
    assert error.code() == S.RESOURCE_EXHAUSTED
    assert error_info(error).reason == Reason.BACKPRESSURE
