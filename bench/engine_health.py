"""The gateway's health checks while the embedded engine is saturated (issue 11, item 1).

    python -m bench.engine_health [--seconds 30] [--streams 20] [--write FILE]

Starts ``gateway serve`` with no key (so it runs the engine as its supervised child) and, side by
side in one run, measures two phases of the same length:

* idle: only the measurement itself;
* saturated: a load process (its own event loop, so it cannot delay the measurement) runs many
  more real-time streams than the engine keeps up with, a hostile stream through the gateway
  and one at the engine directly (``sample_rate=1``, 64 kB frames, unpaced) and an unpaced burst
  (a clip sent as fast as it goes, over and over).

In each phase the bench checks the service's grpc.health.v1 status at 20 Hz (latency p50, p99,
max; failures and NOT_SERVING answers) while one normal real-time stream runs, and reports how
long that stream took against its audio, and the CPU the engine and the gateway used.
:func:`section` returns the report's markdown, for docs/engine-bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import signal
import sys
import tempfile
import time
import wave
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "gateway" / "samples" / "hello.wav"
SERVICE = "transcribe.v1.TranscribeService"
CHUNK_BYTES = 3200  # 100 ms of 16 kHz 16-bit mono
CHUNK_S = 0.1
HOSTILE_FRAME = 64 * 1024
CHECK_HZ = 20.0
CHECK_DEADLINE_S = 5.0
TARGET_P99_MS = 50.0
READY_LIMIT_S = 180.0
HEAD_START_S = 1.0  # the normal stream's, before the load starts
WARM_UP_S = 3.0  # after the load started, before health is measured
RETRY_S = 0.5  # a refused or failed load stream tries again after this
RAMP_S = 0.5
COMMAND = "python -m bench.engine_health"


# ---- figures ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class HealthFigures:
    latencies_s: list[float] = field(default_factory=list)  # answered checks
    failed: int = 0  # deadline exceeded or another error
    not_serving: int = 0

    def ms(self, q: float) -> str:
        return f"{percentile(self.latencies_s, q) * 1000:.1f}" if self.latencies_s else "-"


@dataclass
class Phase:
    label: str
    health: HealthFigures
    stream_took_s: float | None  # None: the stream failed
    stream_error: str
    audio_s: float
    words: int
    engine_cores: float
    gateway_cores: float
    machine_cores: float  # busy, all processes (other work on the machine included)
    load: dict[str, Any] | None = None


@dataclass
class Report:
    idle: Phase
    saturated: Phase
    streams: int
    seconds: float
    restarts: int
    cores: int


# ---- measuring ----------------------------------------------------------------------------------


def clip_pcm(seconds: float) -> bytes:
    """The bundled clip, repeated to at least ``seconds`` of audio."""
    with wave.open(str(CLIP)) as clip:
        one: bytes = clip.readframes(clip.getnframes())
    return one * max(1, -int(-seconds * 32000 // len(one)))


async def check_health(stop: asyncio.Event, address: str) -> HealthFigures:
    """Check the service's health at CHECK_HZ, by the clock, until ``stop``."""
    figures = HealthFigures()
    interval = 1 / CHECK_HZ
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        await stub.Check(request, timeout=CHECK_DEADLINE_S)  # connected before measuring
        due = time.monotonic()
        while not stop.is_set():
            start = time.monotonic()
            try:
                response = await stub.Check(request, timeout=CHECK_DEADLINE_S)
            except grpc.aio.AioRpcError:
                figures.failed += 1
            else:
                figures.latencies_s.append(time.monotonic() - start)
                if response.status != health_pb2.HealthCheckResponse.SERVING:
                    figures.not_serving += 1
            # The next tick by the clock; a late check does not make the next ones crowd in.
            due = max(due + interval, time.monotonic())
            await asyncio.sleep(due - time.monotonic())
    return figures


def stream_requests(
    pcm: bytes, *, paced: bool, rate: int = 16000, frame: int = CHUNK_BYTES, forever: bool = False
) -> Callable[[], AsyncIterator[pb.StreamTranscribeRequest]]:
    """A stream's requests: ``pcm`` in frames, in real time or as fast as it goes (``forever``:
    over and over, never closing)."""

    async def requests() -> AsyncIterator[pb.StreamTranscribeRequest]:
        config = pb.StreamingConfig(
            encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate, interim_results=True
        )
        yield pb.StreamTranscribeRequest(config=config)
        began = time.monotonic()
        k = 0
        while True:
            for start in range(0, len(pcm), frame):
                yield pb.StreamTranscribeRequest(audio=pcm[start : start + frame])
                k += 1
                if paced:
                    await asyncio.sleep(began + k * CHUNK_S - time.monotonic())
            if not forever:
                return

    return requests


async def normal_stream(address: str, pcm: bytes) -> tuple[float | None, str, int]:
    """One real-time stream: (seconds from its first audio to its end, error, final words)."""
    words = 0
    began = time.monotonic()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TranscribeServiceStub(channel)
            async for response in stub.StreamTranscribe(stream_requests(pcm, paced=True)()):
                if response.HasField("result") and response.result.is_final:
                    words += len(response.result.alternatives[0].words) if response.result.alternatives else 0
    except grpc.aio.AioRpcError as exc:
        return None, f"{exc.code().name}: {exc.details()}", words
    return time.monotonic() - began, "", words


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_busy_seconds() -> float:
    """CPU seconds all processes have used since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def engine_pid(gateway: int) -> int | None:
    for task in Path(f"/proc/{gateway}/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError):
                if b"transcribe_engine" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
    return None


async def phase(
    label: str, address: str, gateway: int, pcm: bytes, start_load: Callable[[], Awaitable[None]] | None
) -> Phase:
    """One normal real-time stream, with health checks while it runs (once the load, if any,
    has started and warmed up). The stream starts first, so that the load cannot take its place:
    the engine refuses streams beyond what it keeps up with."""
    stream = asyncio.create_task(normal_stream(address, pcm))
    await asyncio.sleep(HEAD_START_S)
    if start_load is not None:
        await start_load()
    await asyncio.sleep(WARM_UP_S)
    engine = engine_pid(gateway)
    loop = asyncio.get_running_loop()
    began = loop.time()
    engine_cpu = cpu_seconds(engine) if engine else 0.0
    gateway_cpu = cpu_seconds(gateway)
    machine_cpu = machine_busy_seconds()
    stop = asyncio.Event()
    checks = asyncio.create_task(check_health(stop, address))
    try:
        took, error, words = await stream
    finally:
        stop.set()
    health = await checks
    wall = loop.time() - began
    engine_after = engine_pid(gateway)
    return Phase(
        label=label,
        health=health,
        stream_took_s=took,
        stream_error=error,
        audio_s=len(pcm) / 32000,
        words=words,
        # A restarted engine's time is not comparable: leave it out rather than guess.
        engine_cores=(cpu_seconds(engine) - engine_cpu) / wall if engine and engine_after == engine else 0.0,
        gateway_cores=(cpu_seconds(gateway) - gateway_cpu) / wall,
        machine_cores=(machine_busy_seconds() - machine_cpu) / wall,
    )


@contextlib.asynccontextmanager
async def gateway_process(workdir: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, Path]]:
    """``gateway serve`` with the embedded engine: (process, address, its log)."""
    ready, log = workdir / "gateway.ready", workdir / "gateway.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DEEPGRAM_API_KEY", "GATEWAY_UPSTREAM_URL")}
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "--log-level", "INFO", "serve",
            "--listen", "127.0.0.1:0", "--ready-file", str(ready),
            cwd=ROOT, env=env, stdout=sink, stderr=sink,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_LIMIT_S
        while not ready.exists():
            if process.returncode is not None or time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not start; its log:\n{log.read_text()[-3000:]}")
            await asyncio.sleep(0.2)
        yield process, ready.read_text().strip(), log
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def measure(*, seconds: float = 30.0, streams: int = 20) -> Report:
    """Both phases, side by side in one run."""
    pcm = clip_pcm(seconds)
    with tempfile.TemporaryDirectory(prefix="bench-engine-health-") as tmp:
        async with gateway_process(Path(tmp)) as (gateway, address, log):
            found = re.search(r"ws://[\w.:\[\]]+/v1/listen", log.read_text())
            assert found, "the gateway did not log its engine's URL"
            await normal_stream(address, clip_pcm(1.0)[: 32000 * 2])  # first decode: warm up
            idle = await phase("idle", address, gateway.pid, pcm, None)
            loads: list[asyncio.subprocess.Process] = []

            async def start_load() -> None:
                load = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.engine_health", "--load", address, found.group(0),
                    "--streams", str(streams), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                loads.append(load)
                assert load.stdout is not None
                await asyncio.wait_for(load.stdout.readline(), READY_LIMIT_S)  # "running"

            try:
                saturated = await phase("saturated", address, gateway.pid, pcm, start_load)
            finally:
                for load in loads:
                    load.send_signal(signal.SIGTERM)
            summary, _ = await loads[0].communicate()
            saturated.load = json.loads(summary or b"{}")
            restarts = log.read_text().count("restarting it in")
    return Report(idle, saturated, streams, seconds, restarts, os.cpu_count() or 0)


# ---- the load, in its own process ---------------------------------------------------------------


async def _forever(
    tally: Counter[str], name: str, attempt: Callable[[], Awaitable[None]], *, after_s: float = 0.0
) -> None:
    await asyncio.sleep(after_s)
    while True:
        tally[f"{name} calls"] += 1
        try:
            await attempt()
            tally[f"{name} ended"] += 1
        except grpc.aio.AioRpcError as exc:
            tally[f"{name} {exc.code().name}"] += 1
        except Exception as exc:  # a load generator keeps going, counting why
            tally[f"{name} {type(exc).__name__}"] += 1
        await asyncio.sleep(RETRY_S)


async def _drain_call(
    channel: grpc.aio.Channel, requests: Callable[[], AsyncIterator[pb.StreamTranscribeRequest]]
) -> None:
    async for _ in pb_grpc.TranscribeServiceStub(channel).StreamTranscribe(requests()):
        pass


async def load(address: str, engine_url: str, streams: int) -> dict[str, int]:
    pcm = clip_pcm(10.0)
    noise = os.urandom(HOSTILE_FRAME) * 16
    tally: Counter[str] = Counter()

    async def at_engine(rate: int) -> None:
        async with connect(f"{engine_url}?encoding=linear16&sample_rate={rate}", max_size=None) as ws:
            while True:
                await ws.send(noise[:HOSTILE_FRAME])

    # A connection of its own for each stream, as separate clients would have.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(streams + 2)]
    try:
        tasks = [
            *(
                _forever(
                    tally,
                    "real-time",
                    functools.partial(_drain_call, c, stream_requests(pcm, paced=True)),
                    after_s=RAMP_S,  # the unpaced ones first, so that they are admitted too
                )
                for c in channels[:streams]
            ),
            _forever(
                tally,
                "hostile",
                functools.partial(
                    _drain_call,
                    channels[streams],
                    stream_requests(noise, paced=False, rate=1, frame=HOSTILE_FRAME, forever=True),
                ),
            ),
            _forever(
                tally,
                "burst",
                functools.partial(_drain_call, channels[streams + 1], stream_requests(pcm, paced=False)),
            ),
            _forever(tally, "hostile at engine", functools.partial(at_engine, 1)),
            _forever(tally, "flood at engine (48 kHz)", functools.partial(at_engine, 48000)),
        ]
        running = [asyncio.ensure_future(t) for t in tasks]
        print("running", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    finally:
        for c in channels:
            await c.close(grace=None)
    return dict(tally)


# ---- the report ---------------------------------------------------------------------------------


def _took(phase: Phase) -> str:
    if phase.stream_took_s is None:
        return f"failed ({phase.stream_error})"
    ratio = phase.stream_took_s / phase.audio_s
    return f"{phase.stream_took_s:.1f} s for {phase.audio_s:.1f} s ({ratio:.2f}x), {phase.words} words"


def render(report: Report) -> str:
    idle, busy = report.idle, report.saturated
    rows = [
        ("health checks answered", str(len(idle.health.latencies_s)), str(len(busy.health.latencies_s))),
        ("latency p50 (ms)", idle.health.ms(50), busy.health.ms(50)),
        ("latency p99 (ms)", idle.health.ms(99), busy.health.ms(99)),
        ("latency max (ms)", idle.health.ms(100), busy.health.ms(100)),
        (
            f"failed ({CHECK_DEADLINE_S:g} s deadline) / NOT_SERVING",
            f"{idle.health.failed} / {idle.health.not_serving}",
            f"{busy.health.failed} / {busy.health.not_serving}",
        ),
        ("a normal real-time stream", _took(idle), _took(busy)),
        ("engine CPU (cores)", f"{idle.engine_cores:.2f}", f"{busy.engine_cores:.2f}"),
        ("gateway CPU (cores)", f"{idle.gateway_cores:.2f}", f"{busy.gateway_cores:.2f}"),
        ("whole machine CPU busy (cores)", f"{idle.machine_cores:.2f}", f"{busy.machine_cores:.2f}"),
    ]
    p99 = percentile(busy.health.latencies_s, 99) * 1000 if busy.health.latencies_s else float("inf")
    verdict = "met" if p99 < TARGET_P99_MS and not busy.health.failed else "NOT met"
    load = ", ".join(f"{k}: {v}" for k, v in sorted((busy.load or {}).items())) or "no summary"
    lines = [
        "## The gateway's health while the engine is saturated",
        "",
        f"Command: `{COMMAND}` (`make bench-engine-health`; also the last section of "
        "`python -m bench.engine`); "
        f"{report.cores} cores, shared with other work, both phases side by side in one run.",
        "",
        f"`gateway serve` with no key runs the engine as its supervised child. In each phase of "
        f"{report.seconds:g} s of audio the bench checks `{SERVICE}`'s health (grpc.health.v1 "
        f"Check) at {CHECK_HZ:g} Hz from its own process while one normal stream is sent in real "
        f"time. Saturated: a separate load process runs {report.streams} real-time streams "
        "(refused ones try again), a hostile stream through the gateway and one at the engine "
        "(`sample_rate=1`, 64 kB frames, unpaced), a flood at the engine (48 kHz, 64 kB frames, "
        "unpaced) and an unpaced burst of a clip, over and over. The engine child runs at a lower "
        "CPU priority (nice 10) than the gateway. The machine is shared: the idle column is the "
        "floor it allowed during the run (other work delays a check as the engine could), and the "
        "last row shows how busy it was.",
        "",
        "| | idle | saturated |",
        "|---|---|---|",
        *(f"| {name} | {a} | {b} |" for name, a, b in rows),
        "",
        f"Health p99 while saturated: {p99:.1f} ms against a target of under {TARGET_P99_MS:g} ms "
        f"with no failed check: **{verdict}**. Engine restarts during the run: {report.restarts}.",
        "",
        f"The load's calls and how they ended, as its clients saw them: {load}. An INTERNAL here "
        "is grpc-python's `Internal error from Core`, what its client reports when it is still "
        "writing as the server ends the call (grpc/grpc#36066): the load writes without waiting "
        "for `session_started`, and the gateway's own `grpc_server_handled_total` counts those "
        "calls as the refusals they were (INVALID_ARGUMENT, RESOURCE_EXHAUSTED).",
        "",
    ]
    return "\n".join(lines)


async def section(*, seconds: float = 30.0, streams: int = 20) -> str:
    """Run the benchmark and return its markdown section."""
    return render(await measure(seconds=seconds, streams=streams))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine_health", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="audio in each phase's normal stream")
    parser.add_argument("--streams", type=int, default=20, help="real-time streams of the load")
    parser.add_argument("--write", type=Path, default=None, help="also write the report here (markdown)")
    parser.add_argument("--load", nargs=2, metavar=("ADDRESS", "ENGINE_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        print(json.dumps(asyncio.run(load(args.load[0], args.load[1], args.streams))), flush=True)
        return
    text = asyncio.run(section(seconds=args.seconds, streams=args.streams))
    print(text)
    if args.write is not None:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text("# Engine isolation benchmark\n\n" + text)


if __name__ == "__main__":
    main()
