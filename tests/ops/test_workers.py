"""``gateway serve --workers 2``: two processes share the port and both serve streams."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client import multiprocess
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc

from tests.conftest import ROOT, TIMING
from tests.integration.conftest import LINEAR16, requests, words
from tests.support.standin import DeepgramStandIn, counter_audio


def free_port_pair() -> int:
    """A port P such that P and P + 1 are free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no free pair of ports")


def sessions_served(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("gateway_sessions_total{")
    )


def sessions_served_per_worker(metrics_dir: Path) -> list[float]:
    """Each worker's own count, from its file in the multiprocess folder (one file per pid)."""
    counts = []
    for path in sorted(metrics_dir.glob("counter_*.db")):
        families = multiprocess.MultiProcessCollector.merge([str(path)], accumulate=True)  # type: ignore[no-untyped-call]
        counts.append(
            sum(
                s.value
                for f in families
                if f.name == "gateway_sessions"
                for s in f.samples
                if s.name.endswith("_total")
            )
        )
    return counts


async def test_two_workers_share_the_port_and_both_serve(standin: DeepgramStandIn, tmp_path: Path) -> None:
    """Two workers share the port and both serve; their metrics are summed on one endpoint."""
    metrics_port = free_port_pair()
    ready = tmp_path / "ready"
    metrics_dir = tmp_path / "metrics"
    env = {k: v for k, v in os.environ.items() if k != "DEEPGRAM_API_KEY"}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    process = subprocess.Popen(  # noqa: ASYNC220 (started once; waited for without blocking)
        [
            sys.executable, "-m", "gateway", "--log-level", "WARNING", "serve", "--workers", "2",
            "--listen", "127.0.0.1:0", "--ready-file", str(ready), "--upstream-url", standin.url,
            "--metrics-listen", f"127.0.0.1:{metrics_port}",
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        for _ in range(int(300 * TIMING)):
            if ready.exists() or process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert ready.exists(), f"the supervisor did not get ready (exit code {process.poll()})"
        address = ready.read_text().strip()

        async def one_stream(k: int) -> list[str]:
            # A connection each (a channel with its own subchannel pool): the kernel spreads new
            # connections, not streams, over the workers.
            options = [("grpc.use_local_subchannel_pool", 1)]
            async with grpc.aio.insecure_channel(address, options=options) as channel:
                stub = pb_grpc.TranscribeServiceStub(channel)
                responses = [r async for r in stub.StreamTranscribe(requests(LINEAR16, counter_audio(k, 2)))]
            return [w.word for w in words(responses)]

        results = await asyncio.gather(*(one_stream(k) for k in range(30)))
        assert results == [[f"w{k}", f"w{k + 1}"] for k in range(30)]
        assert await asyncio.to_thread(sessions_served, metrics_port) == 30
        served = sessions_served_per_worker(metrics_dir)
        assert len(served) == 2 and sum(served) == 30
        assert all(n > 0 for n in served), f"one worker served nothing: {served}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(process.wait, 60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie waiting for its new parent to reap it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def accepts_connections(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_workers_end_when_the_supervisor_is_killed(standin: DeepgramStandIn, tmp_path: Path) -> None:
    """kill -9 of the supervisor: both workers exit and nothing holds the port any more."""
    ready = tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if k != "DEEPGRAM_API_KEY"}
    process = subprocess.Popen(  # noqa: ASYNC220 (started once; waited for without blocking)
        [
            sys.executable, "-m", "gateway", "--log-level", "WARNING", "serve", "--workers", "2",
            "--listen", "127.0.0.1:0", "--ready-file", str(ready), "--upstream-url", standin.url,
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    workers: list[int] = []
    try:
        for _ in range(int(300 * TIMING)):
            if ready.exists() or process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert ready.exists(), f"the supervisor did not get ready (exit code {process.poll()})"
        address = ready.read_text().strip()
        workers = children(process.pid)
        assert len(workers) == 2
        assert accepts_connections(address)
        process.kill()
        await asyncio.to_thread(process.wait, 10)
        for _ in range(int(200 * TIMING)):
            if not any(running(pid) for pid in workers):
                break
            await asyncio.sleep(0.1)
        assert not [pid for pid in workers if running(pid)], "a worker outlived its supervisor"
        assert not accepts_connections(address), "something still holds the port"
    finally:
        for pid in workers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
