"""``gateway serve --workers 2`` with the embedded engine: kill -9 of the engine child makes every
worker's service health NOT_SERVING until the supervisor has it serving again. Real processes,
real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.service import SERVICE_NAME
from tests.engine.test_child import LIMIT_S, hello_pcm, transcribe
from tests.ops.test_workers import children, running
from tests.support.gateway_process import gateway_process
from tests.support.timing import TIMING

pytestmark = [
    pytest.mark.engine,
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# The kernel spreads connections over the workers at random: this many make missing one of two
# workers about as likely as 2 ** -31, and the test tells which worker holds each.
MAX_CONNECTIONS = 32


def is_engine(pid: int) -> bool:
    return b"transcribe_engine" in Path(f"/proc/{pid}/cmdline").read_bytes()


def _inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                found.add(target[len("socket:[") : -1])
    return found


def connections_by_worker(workers: list[int], port: int) -> dict[int, int]:
    """How many established connections to ``port`` each worker holds (/proc/net/tcp)."""
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rpartition(":")[2], 16)
                if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                    established.add(fields[9])
    return {pid: len(_inodes(pid) & established) for pid in workers}


async def test_every_workers_health_follows_the_engine_through_kill_9(tmp_path: Path) -> None:
    """Each worker (a Watch on connections that reach both) reads SERVING, then NOT_SERVING
    after kill -9 of the engine child, then SERVING once it was restarted; a new stream is then
    transcribed."""
    async with gateway_process(
        tmp_path,
        "--workers",
        "2",
        global_flags=("--log-level", "WARNING"),
        name="supervisor",
        start_timeout_s=LIMIT_S / TIMING,  # the engine child loads its model first
        stop_grace_s=60.0,
    ) as gateway:
        supervisor, address = gateway.process, gateway.address
        pids = children(supervisor.pid)
        engines = [pid for pid in pids if is_engine(pid)]
        workers = [pid for pid in pids if pid not in engines]
        assert len(engines) == 1 and len(workers) == 2
        port = int(address.rpartition(":")[2])
        # A channel each with its own subchannel pool: a connection each, which the kernel
        # gives to one worker or the other.
        channels: list[grpc.aio.Channel] = []
        watches: list[
            grpc.aio.UnaryStreamCall[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]
        ] = []
        try:
            while len(channels) < MAX_CONNECTIONS:
                channel = grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
                channels.append(channel)
                watch = health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=2 * LIMIT_S
                )
                watches.append(watch)
                async with asyncio.timeout(LIMIT_S):
                    first = await watch.read()
                assert isinstance(first, health_pb2.HealthCheckResponse) and first.status == SERVING
                held = connections_by_worker(workers, port)
                if len(channels) >= 4 and all(held.values()):
                    break
            held = connections_by_worker(workers, port)
            assert all(held.values()), f"connections by worker: {held}"

            os.kill(engines[0], signal.SIGKILL)

            async def down_then_up(
                watch: grpc.aio.UnaryStreamCall[
                    health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
                ],
            ) -> list[int]:
                seen: list[int] = []
                while seen[-2:] != [NOT_SERVING, SERVING]:
                    response = await watch.read()
                    assert isinstance(response, health_pb2.HealthCheckResponse), "the watch ended"
                    if not seen or seen[-1] != response.status:
                        seen.append(response.status)
                return seen

            async with asyncio.timeout(LIMIT_S):
                histories = await asyncio.gather(*(down_then_up(w) for w in watches))
            assert all(h == [NOT_SERVING, SERVING] for h in histories), histories
        finally:
            for watch in watches:
                watch.cancel()
            for channel in channels:
                await channel.close()
        restarted = [pid for pid in children(supervisor.pid) if is_engine(pid)]
        assert len(restarted) == 1 and restarted[0] != engines[0] and not running(engines[0])
        assert all(running(pid) for pid in workers), "a worker was replaced instead of the engine"
        async with grpc.aio.insecure_channel(address) as channel:
            text = await transcribe(channel, hello_pcm())
        assert text.strip(), "the restarted engine transcribed nothing through the workers"
    assert gateway.process.returncode == 0, gateway.log
