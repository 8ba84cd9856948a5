"""Readiness comes back by itself: while the upstream rejects the key, the gateway re-checks it
with a handshake now and then, and reports SERVING again once the key is accepted, although no
stream reaches a replica that a readiness-gated balancer has taken out."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from gateway.config import Settings
from tests.conftest import TIMING
from tests.integration.conftest import LINEAR16, Running, expect_error, requests, running_gateway
from tests.support.standin import DeepgramStandIn, Plan

SERVICE = "transcribe.v1.TranscribeService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
INTERVAL_S = 0.4 * TIMING


class TimedStandIn(DeepgramStandIn):
    """The stand-in, noting when each handshake came and waking whoever waits for the next."""

    def __init__(self, plans: list[Plan] | None = None, default: Plan | None = None) -> None:
        super().__init__(plans, default)
        self.handshake_times: list[float] = []
        self.handshake = asyncio.Event()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshake_times.append(asyncio.get_running_loop().time())
        self.handshake.set()
        return super()._process_request(connection, request)

    async def wait_handshakes(self, n: int, limit_s: float) -> None:
        async with asyncio.timeout(limit_s):
            while self.handshakes < n:
                self.handshake.clear()
                await self.handshake.wait()


async def service_status(gw: Running) -> int:
    stub = health_pb2_grpc.HealthStub(gw.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE))
    return int(response.status)


async def wait_serving(gw: Running, limit_s: float) -> None:
    """Follow the service's health with Watch until it reads SERVING."""
    stub = health_pb2_grpc.HealthStub(gw.channel)
    async with asyncio.timeout(limit_s):
        async for response in stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE)):
            if response.status == SERVING:
                return


async def test_the_service_is_serving_again_one_check_after_the_key_is_accepted() -> None:
    """A stream fails 401; two re-checks are refused; the third is accepted and the service is
    SERVING at once, without any stream, and the checks stop."""
    rejected = Plan(reject_status=401)
    standin = TimedStandIn([rejected, rejected, rejected])
    async with standin:
        async with running_gateway(standin.url, key_recheck_interval_s=INTERVAL_S) as gw:
            await expect_error(gw, requests(LINEAR16))
            assert await service_status(gw) == NOT_SERVING
            assert standin.handshakes == 1
            await wait_serving(gw, 10 * TIMING)
            assert standin.handshakes == 4, "SERVING after the first accepted check, not later"
            await asyncio.wait_for(standin.connections[3].closed.wait(), 5 * TIMING)
            assert standin.connections[3].texts == [{"type": "CloseStream"}], "the check sends no audio"
            # Nothing to wait for but time: two intervals without a check.
            await asyncio.sleep(2 * INTERVAL_S)
            assert standin.handshakes == 4, "no more checks once the key is accepted"


async def test_a_key_that_stays_rejected_is_rechecked_with_backoff() -> None:
    """Checks keep coming while the key is rejected, their interval doubling up to the setting."""
    standin = TimedStandIn(default=Plan(reject_status=403))
    async with standin:
        async with running_gateway(standin.url, key_recheck_interval_s=INTERVAL_S) as gw:
            await expect_error(gw, requests(LINEAR16))
            await standin.wait_handshakes(7, 20 * TIMING)
            assert await service_status(gw) == NOT_SERVING
    checks = standin.handshake_times[1:7]
    gaps = [b - a for a, b in itertools.pairwise(checks)]
    # Backoff from an eighth of the interval, doubling: 0.1, 0.2, 0.4, then 0.4 s (times TIMING).
    assert gaps[0] < gaps[1] < gaps[2], f"no backoff: {gaps}"
    assert gaps[-1] >= INTERVAL_S * 0.9, f"the interval is not reached: {gaps}"
    assert max(gaps) < INTERVAL_S * 1.5, f"a gap well over the interval: {gaps}"


def test_the_recheck_interval_is_at_most_30_s() -> None:
    with pytest.raises(ValidationError):
        Settings(key_recheck_interval_s=31)
    assert Settings().key_recheck_interval_s == 30
