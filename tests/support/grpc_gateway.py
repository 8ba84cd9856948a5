"""The real gateway in-process (grpc.aio on a loopback port) and how tests talk to it: build
requests, collect responses, expect an error and read its rich status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from grpc_status import rpc_status
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc

from gateway.config import Settings
from gateway.server import GatewayServer

TEST_KEY = "dg-test-key-0123456789abcdef"


@dataclass
class Running:
    server: GatewayServer
    stub: pb_grpc.TranscribeServiceStub
    channel: grpc.aio.Channel


@contextlib.asynccontextmanager
async def running_gateway(upstream_url: str, **settings: Any) -> AsyncIterator[Running]:
    """A gateway on 127.0.0.1:<free port> relaying to ``upstream_url``, and a stub for it."""
    options: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "upstream_url": upstream_url,
        "deepgram_api_key": TEST_KEY,
        "retry_initial_backoff_s": 0.01,
        "retry_max_backoff_s": 0.05,
    }
    options.update(settings)
    async with GatewayServer(Settings(**options)) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield Running(server, pb_grpc.TranscribeServiceStub(channel), channel)


def requests(config: pb.StreamingConfig, *items: bytes | pb.Control) -> list[pb.StreamTranscribeRequest]:
    out = [pb.StreamTranscribeRequest(config=config)]
    for item in items:
        if isinstance(item, bytes):
            out.append(pb.StreamTranscribeRequest(audio=item))
        else:
            out.append(pb.StreamTranscribeRequest(control=item))
    return out


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def collect(
    stub: pb_grpc.TranscribeServiceStub,
    reqs: Iterable[pb.StreamTranscribeRequest] | AsyncIterator[pb.StreamTranscribeRequest],
) -> list[pb.StreamTranscribeResponse]:
    return [response async for response in stub.StreamTranscribe(reqs)]


async def expect_error(
    gateway: Running,
    reqs: Iterable[pb.StreamTranscribeRequest] | AsyncIterator[pb.StreamTranscribeRequest],
    metadata: tuple[tuple[str, str], ...] = (),
) -> tuple[grpc.RpcError, list[pb.StreamTranscribeResponse]]:
    """Run a call that must fail; returns its error and the responses before it.

    A list of requests goes through grpc's blocking client in a thread: grpc.aio's client can
    report INTERNAL instead of the server's status when the call ends while one of its writes
    is in flight (grpc/grpc#36066), which would make these checks flaky.
    """
    received: list[pb.StreamTranscribeResponse] = []
    if isinstance(reqs, AsyncIterator):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for response in gateway.stub.StreamTranscribe(reqs, metadata=metadata):
                received.append(response)  # noqa: PERF401 (keep what came before the error)
        return info.value, received
    requests_list = list(reqs)

    def call() -> grpc.RpcError:
        with grpc.insecure_channel(gateway.server.address) as channel:
            stub = pb_grpc.TranscribeServiceStub(channel)
            try:
                for response in stub.StreamTranscribe(iter(requests_list), metadata=metadata):
                    received.append(response)  # noqa: PERF402
            except grpc.RpcError as exc:
                return exc
        raise AssertionError("the call succeeded")

    return await asyncio.to_thread(call), received


def status_detail(error: grpc.RpcError, kind: type[DetailT]) -> DetailT:
    """The first detail of type ``kind`` in an error's rich status (grpc-status-details-bin)."""
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no rich status"
    for packed in status.details:
        detail = kind()
        if packed.Unpack(detail):
            return detail
    raise AssertionError(f"no {kind.__name__} in the status details")


def words(responses: Iterable[pb.StreamTranscribeResponse], *, final_only: bool = True) -> list[pb.Word]:
    return [
        word
        for r in responses
        if r.WhichOneof("response") == "result" and (r.result.is_final or not final_only)
        for word in r.result.alternatives[0].words
    ]


DetailT = TypeVar("DetailT", bound=Message)

LINEAR16 = pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000)
