"""Scale-out: gateway replicas (real processes) behind a real nginx running deploy/nginx/nginx.conf."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc

from tests.support.gateway_process import GatewayProcess, gateway_process
from tests.support.grpc_gateway import LINEAR16, chunks, collect, requests, words
from tests.support.nginx import NginxProcess, nginx_process
from tests.support.processes import free_port, stop_process
from tests.support.standin import BLOCK_BYTES, DeepgramStandIn, counter_audio
from tests.support.timing import TIMING

STREAMS = 40
BLOCKS_PER_STREAM = 25  # 2 s of counter audio each


@dataclass
class Fleet:
    """Two replicas, each relaying to its own stand-in, behind nginx."""

    standins: list[DeepgramStandIn]
    replicas: list[GatewayProcess]
    nginx: NginxProcess


@contextlib.asynccontextmanager
async def fleet(nginx_bin: str, workdir: Path, replicas: int = 2) -> AsyncIterator[Fleet]:
    async with contextlib.AsyncExitStack() as stack:
        standins = [await stack.enter_async_context(DeepgramStandIn()) for _ in range(replicas)]
        gateways = [
            await stack.enter_async_context(
                gateway_process(
                    workdir, "--upstream-url", standin.url, "--drain-grace-s", "2", name=f"replica{i}"
                )
            )
            for i, standin in enumerate(standins)
        ]
        proxy = await stack.enter_async_context(
            nginx_process(nginx_bin, workdir / "nginx", [g.address for g in gateways])
        )
        yield Fleet(standins, gateways, proxy)


async def stream_counter_audio(
    stub: pb_grpc.TranscribeServiceStub, first_block: int, blocks: int
) -> list[pb.StreamTranscribeResponse]:
    """One stream: config, counter audio in 2-block messages, half-close; every response."""
    audio = counter_audio(first_block, blocks)
    return await collect(stub, requests(LINEAR16, *chunks(audio, 2 * BLOCK_BYTES)))


def expected_words(first_block: int, blocks: int) -> list[str]:
    return [f"w{n}" for n in range(first_block, first_block + blocks)]


async def test_streams_spread_over_replicas_behind_nginx_and_each_gets_all_its_words(
    nginx_bin: str, tmp_path: Path
) -> None:
    """40 concurrent streams through nginx all complete with their own words, in order, and
    both replicas serve some of them (nginx gives each stream its own replica connection)."""
    async with fleet(nginx_bin, tmp_path) as f:
        async with grpc.aio.insecure_channel(f.nginx.address) as channel:
            stub = pb_grpc.TranscribeServiceStub(channel)
            firsts = [i * 100 for i in range(STREAMS)]
            results = await asyncio.wait_for(
                asyncio.gather(*(stream_counter_audio(stub, first, BLOCKS_PER_STREAM) for first in firsts)),
                60 * TIMING,
            )

        served_by: dict[str, int] = {
            connection.request_id: replica
            for replica, standin in enumerate(f.standins)
            for connection in standin.connections
        }
        per_replica = [0] * len(f.replicas)
        for first, responses in zip(firsts, results, strict=True):
            kinds = [r.WhichOneof("response") for r in responses]
            assert kinds[0] == "session_started", kinds
            assert kinds[-1] == "summary", kinds
            got = [w.word for w in words(responses)]
            assert got == expected_words(first, BLOCKS_PER_STREAM), f"stream from block {first}"
            request_id = responses[0].session_started.upstream_request_id
            assert request_id in served_by, "the stream's upstream connection is no stand-in's"
            per_replica[served_by[request_id]] += 1
        assert sum(per_replica) == STREAMS
        assert all(n > 0 for n in per_replica), f"streams per replica: {per_replica}"

        # nginx's own account (the deployed log format): every stream ended with grpc-status 0,
        # and it names both replicas.
        log = f.nginx.access_log.read_text()
        lines = [
            line for line in log.splitlines() if "/transcribe.v1.TranscribeService/StreamTranscribe" in line
        ]
        assert len(lines) == STREAMS, log
        assert all("grpc-status=0 " in line for line in lines), log
        seen = {m.group(1) for m in re.finditer(r"replica=(\S+)", "\n".join(lines))}
        assert seen == {g.address for g in f.replicas}, seen


async def test_a_stream_longer_than_a_mebibyte_passes_nginx_whole(nginx_bin: str, tmp_path: Path) -> None:
    """40 s of audio (1.25 MiB in one request body) streams through nginx to the last word:
    the deployed config lifts nginx's default 1 MiB body limit."""
    blocks = 500
    assert len(counter_audio(0, blocks)) > 1024 * 1024
    async with fleet(nginx_bin, tmp_path, replicas=1) as f:
        async with grpc.aio.insecure_channel(f.nginx.address) as channel:
            stub = pb_grpc.TranscribeServiceStub(channel)
            responses = await asyncio.wait_for(stream_counter_audio(stub, 0, blocks), 60 * TIMING)
    assert [w.word for w in words(responses)] == expected_words(0, blocks)
    assert responses[-1].WhichOneof("response") == "summary"


async def test_health_passes_through_nginx(nginx_bin: str, tmp_path: Path) -> None:
    """grpc.health.v1 answers through nginx for the server and for TranscribeService."""
    async with fleet(nginx_bin, tmp_path, replicas=1) as f:
        async with grpc.aio.insecure_channel(f.nginx.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", "transcribe.v1.TranscribeService"):
                response = await stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=10 * TIMING
                )
                assert response.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_no_reachable_replica_is_unavailable_with_a_reason(nginx_bin: str, tmp_path: Path) -> None:
    """With every replica down, nginx answers the call with gRPC UNAVAILABLE and says why,
    instead of an HTTP error page."""
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    async with nginx_process(nginx_bin, tmp_path / "nginx", [dead]) as proxy:
        async with grpc.aio.insecure_channel(proxy.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=20 * TIMING)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    assert info.value.details() == "no transcribe gateway replica is reachable"


async def test_streams_fail_over_to_the_remaining_replica_when_one_is_gone(
    nginx_bin: str, tmp_path: Path
) -> None:
    """After one replica has exited, every new stream through nginx still completes: nginx
    skips the refused connection for the next replica (grpc_next_upstream, max_fails) and the
    client sees no error."""
    async with fleet(nginx_bin, tmp_path) as f:
        gone, left = f.replicas
        await stop_process(gone.process)
        assert gone.process.returncode is not None
        async with grpc.aio.insecure_channel(f.nginx.address) as channel:
            stub = pb_grpc.TranscribeServiceStub(channel)
            firsts = [i * 100 for i in range(10)]
            results = await asyncio.wait_for(
                asyncio.gather(*(stream_counter_audio(stub, first, 5) for first in firsts)), 60 * TIMING
            )
        for first, responses in zip(firsts, results, strict=True):
            assert [w.word for w in words(responses)] == expected_words(first, 5)
        assert len(f.standins[1].connections) == len(firsts)
        assert left.process.poll() is None
