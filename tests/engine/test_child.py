"""The engine as the gateway's supervised child: restarts, health, logs, dying with the gateway,
and a hostile stream that cannot freeze the gateway. Real processes, real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given
from hypothesis import strategies as st
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.config import Settings
from gateway.engine_child import (
    ChildPolicy,
    EngineChild,
    Liveness,
    StateFanout,
    follow_state,
    last_state,
    listening,
    parse_log_line,
    read_state_now,
    restart_delay,
)
from gateway.server import GatewayServer
from gateway.service import SERVICE_NAME
from tests.conftest import TIMING

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "gateway" / "samples" / "hello.wav"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
LIMIT_S = 120 * TIMING  # starting a child imports faster-whisper and loads the model


# ---- pure parts ----


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 0.1), (1, 0.2), (2, 0.4), (5, 3.2), (7, 10.0), (50, 10.0), (-1, 0.1)],
)
def test_restart_delay_doubles_up_to_the_bound(failures: int, expected: float) -> None:
    assert restart_delay(failures, ChildPolicy()) == pytest.approx(expected)


@given(st.integers(min_value=-5, max_value=10_000))
def test_restart_delay_is_bounded(failures: int) -> None:
    policy = ChildPolicy(initial_backoff_s=0.05, max_backoff_s=3.0)
    assert policy.initial_backoff_s <= restart_delay(failures, policy) <= policy.max_backoff_s


@pytest.mark.parametrize(
    ("probes", "dead"),
    [
        ([True, True, True], False),
        ([False, False], False),
        ([False, False, False], True),
        ([False, False, True, False, False], False),  # a success resets the count
        ([True, False, False, False], True),
    ],
)
def test_liveness_needs_failures_in_a_row(probes: list[bool], dead: bool) -> None:
    liveness = Liveness(threshold=3)
    verdicts = [liveness.record(ok) for ok in probes]
    assert verdicts[-1] is dead


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '{"level": "INFO", "logger": "transcribe_engine.server", "message": "ready"}\n',
            ("transcribe_engine.server", logging.INFO, "ready"),
        ),
        (
            '{"level": "WARNING", "logger": "faster_whisper", "message": "slow"}',
            ("transcribe_engine.faster_whisper", logging.WARNING, "slow"),
        ),
        (
            '{"level": "INFO", "logger": "transcribe_engine", "message": "x", "request_id": "r1"}',
            ("transcribe_engine", logging.INFO, "x [request_id=r1]"),
        ),
        (
            '{"level": "ERROR", "logger": "transcribe_engine.x", "message": "m", "exception": "Trace"}',
            ("transcribe_engine.x", logging.ERROR, "m\nTrace"),
        ),
        (
            "Traceback (most recent call last):\n",
            ("transcribe_engine", logging.WARNING, "Traceback (most recent call last):"),
        ),
        ('{"level": "NOPE", "message": "m"}', ("transcribe_engine", logging.WARNING, "m")),
        ("[1, 2]", ("transcribe_engine", logging.WARNING, "[1, 2]")),
    ],
)
def test_child_log_lines_are_relogged_under_the_engine_logger(
    line: str, expected: tuple[str, int, str]
) -> None:
    assert parse_log_line(line) == expected


@given(st.text())
def test_any_stderr_line_parses(line: str) -> None:
    name, level, _ = parse_log_line(line)
    assert name.startswith("transcribe_engine")
    assert isinstance(level, int)


@pytest.mark.parametrize(
    ("data", "up"),
    [(b"1", True), (b"0", False), (b"10", False), (b"01", True), (b"0101", True), (b"", False)],
)
def test_the_last_state_on_the_pipe_wins_and_its_end_means_down(data: bytes, up: bool) -> None:
    assert last_state(data) is up


async def test_every_pipe_carries_each_change_in_order() -> None:
    """The fanout's pipes, read as a worker reads them: the state at opening, then each change."""
    fanout = StateFanout(up=True)
    first, second = fanout.open_pipe(), fanout.open_pipe()
    try:
        assert read_state_now(first) is True
        assert read_state_now(first) is None  # nothing new
        seen: list[bool] = []
        changed = asyncio.Event()

        async def on_change(up: bool) -> None:
            seen.append(up)
            changed.set()

        follower = asyncio.create_task(follow_state(second, on_change))
        async with asyncio.timeout(10 * TIMING):
            await changed.wait()  # the state at opening
        for up in (False, True, False):
            changed.clear()
            await fanout.publish(up)
            async with asyncio.timeout(10 * TIMING):
                await changed.wait()
        assert seen == [True, False, True, False]
        fanout.close()  # the supervisor is gone: the worker reads down, and stops following
        async with asyncio.timeout(10 * TIMING):
            await follower
        assert seen == [True, False, True, False, False]
    finally:
        fanout.close()
        os.close(first)


def test_a_socket_that_was_shut_down_no_longer_listens() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        assert listening(sock)
        sock.shutdown(socket.SHUT_RDWR)
        assert not listening(sock)


# ---- helpers over real sockets ----


@contextlib.asynccontextmanager
async def gateway_with_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[GatewayServer, grpc.aio.Channel]]:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_UPSTREAM_URL", raising=False)
    async with asyncio.timeout(LIMIT_S):
        server = await GatewayServer(Settings(listen="127.0.0.1:0")).__aenter__()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield server, channel
    finally:
        await server.__aexit__(None, None, None)


async def service_status(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5 * TIMING)
    return int(response.status)


async def wait_status(channel: grpc.aio.Channel, wanted: int) -> None:
    """Follow the service's health with Watch until it reports ``wanted``."""
    stub = health_pb2_grpc.HealthStub(channel)
    async with asyncio.timeout(LIMIT_S):
        call = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        try:
            async for response in call:
                if response.status == wanted:
                    return
        finally:
            call.cancel()


def hello_pcm() -> bytes:
    with wave.open(str(HELLO)) as clip:
        frames: bytes = clip.readframes(clip.getnframes())
        return frames


async def transcribe(channel: grpc.aio.Channel, pcm: bytes, *, pace_s: float = 0.0) -> str:
    """Stream 16 kHz PCM through the gateway in 100 ms chunks; return the final transcript."""
    stub = pb_grpc.TranscribeServiceStub(channel)
    config = pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000)

    async def requests() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=config)
        began = time.monotonic()
        for k, start in enumerate(range(0, len(pcm), 3200)):
            yield pb.StreamTranscribeRequest(audio=pcm[start : start + 3200])
            if pace_s:
                # By the clock, not by sleeps, which would add up to more than real time.
                await asyncio.sleep(began + (k + 1) * pace_s - time.monotonic())

    async with asyncio.timeout(LIMIT_S):
        finals = [
            response.result.alternatives[0].transcript
            async for response in stub.StreamTranscribe(requests())
            if response.HasField("result") and response.result.is_final
        ]
    return " ".join(f for f in finals if f)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); its state tells.
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    return True


async def wait_exit(pid: int) -> None:
    """Wait for a process that is not our child to end, on its pidfd becoming readable."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    ended = asyncio.Event()
    loop.add_reader(fd, ended.set)
    try:
        async with asyncio.timeout(30 * TIMING):
            await ended.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


# ---- over real sockets ----


@pytest.mark.slow
async def test_kill_9_of_the_engine_is_seen_by_health_and_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 of the engine child: the service is NOT_SERVING, then SERVING again, and a new
    stream is transcribed by the restarted child."""
    async with gateway_with_engine(monkeypatch) as (server, channel):
        engine = server.engine
        assert engine is not None and engine.pid is not None
        assert await service_status(channel) == SERVING
        first = engine.pid
        os.kill(first, signal.SIGKILL)
        await wait_status(channel, NOT_SERVING)
        await wait_status(channel, SERVING)
        assert engine.pid not in (None, first)
        text = await transcribe(channel, hello_pcm())
        assert text.strip(), "the restarted engine transcribed nothing"


def shut_down_listener(port: int) -> None:
    """Shut down, through a descriptor of our own, the listening socket on ``port`` that this
    process holds (the one the gateway hands to its engine child): as ``ss -K`` would, it stops
    listening for every process that holds it."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            with socket.socket(fileno=os.dup(int(name))) as sock:
                inet = sock.family in (socket.AF_INET, socket.AF_INET6)
                if inet and sock.getsockname()[1] == port and listening(sock):
                    sock.shutdown(socket.SHUT_RDWR)
                    return
    raise AssertionError(f"no listening socket on port {port} in this process")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the socket in /proc")
async def test_a_destroyed_listening_socket_is_seen_and_the_engine_serves_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shutting down the engine's listening socket makes it refuse every connection: the
    service is NOT_SERVING, the child is replaced on a new socket at the same URL, and then the
    service is SERVING and a new stream is transcribed."""
    async with gateway_with_engine(monkeypatch) as (server, channel):
        engine = server.engine
        assert engine is not None and engine.pid is not None
        url, first = engine.url, engine.pid
        assert await service_status(channel) == SERVING
        shut_down_listener(engine.port)
        await wait_status(channel, NOT_SERVING)
        await wait_status(channel, SERVING)
        assert engine.url == url and engine.pid not in (None, first)
        text = await transcribe(channel, hello_pcm())
        assert text.strip(), "the engine transcribed nothing on its new socket"


@pytest.mark.slow
async def test_a_hung_engine_is_taken_out_and_replaced() -> None:
    """A child (niced below the gateway) whose event loop no longer answers (SIGSTOP) fails its
    probes: it is marked down, killed and replaced, and the same URL serves again."""
    changes: list[bool] = []

    async def on_change(up: bool) -> None:
        changes.append(up)

    policy = ChildPolicy(probe_interval_s=0.2, probe_timeout_s=0.5 * TIMING, probe_failures=2)
    async with EngineChild(max_streams=2, on_change=on_change, policy=policy) as engine:
        url, hung = engine.url, engine.pid
        assert hung is not None
        # Recognition yields the CPU to the relay: the child runs niced.
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, hung) == min(19, ours + ChildPolicy().nice)
        os.kill(hung, signal.SIGSTOP)
        async with asyncio.timeout(LIMIT_S):
            await engine.wait_for(up=False)
            await engine.wait_for(up=True)
        assert engine.url == url and engine.pid != hung
        assert _gone(hung)
        async with connect(url) as ws:
            await ws.send('{"type": "CloseStream"}')
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass
    assert changes == [True, False, True]  # a deliberate stop is not reported as a failure


@pytest.mark.slow
async def test_the_engine_dies_with_its_supervisor(tmp_path: Path) -> None:
    """kill -9 of the process that supervises the engine ends the engine too."""
    script = tmp_path / "supervisor.py"
    script.write_text(
        "import asyncio, sys\n"
        "from gateway.engine_child import EngineChild\n"
        "async def main():\n"
        "    async with EngineChild(max_streams=1) as engine:\n"
        "        print(engine.pid, flush=True)\n"
        "        await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    root = ROOT
    supervisor = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        stdout=asyncio.subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert supervisor.stdout is not None
    try:
        async with asyncio.timeout(LIMIT_S):
            line = await supervisor.stdout.readline()
        child = int(line)
        assert not _gone(child)
    finally:
        supervisor.kill()
        await supervisor.wait()
    await wait_exit(child)
    assert _gone(child)


@pytest.mark.slow
async def test_a_hostile_stream_cannot_freeze_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients (another process) that declare absurd rates and flood 64 kB bursts, through the
    gateway and at the engine: health checks stay fast and a concurrent normal stream, sent in
    real time, completes with its words, not much later than its audio ends."""
    async with gateway_with_engine(monkeypatch) as (server, channel):
        engine = server.engine
        assert engine is not None
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.engine.hostile", server.address, engine.url, cwd=ROOT
        )
        stop = asyncio.Event()

        async def health_latencies() -> list[float]:
            latencies = []
            while not stop.is_set():
                start = time.perf_counter()
                assert await service_status(channel) == SERVING
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.05)
            return latencies

        checks = asyncio.create_task(health_latencies())
        pcm = hello_pcm()
        try:
            began = time.monotonic()
            text = await transcribe(channel, pcm, pace_s=0.1)
            took = time.monotonic() - began
        finally:
            stop.set()
            attacker.kill()
            await attacker.wait()
        latencies = await checks
        audio_s = len(pcm) / 32000
        assert text.strip(), "the normal stream lost its words"
        # Real time plus a flush, with room for a loaded machine: sharing the gateway's process,
        # such a stream took seven times its length. bench.engine_health measures it.
        assert took < (2 * audio_s + 10) * TIMING, f"{took:.1f} s for {audio_s:.1f} s of audio"
        assert len(latencies) > 10
        assert max(latencies) < 1.0 * TIMING
