"""Figures of the hostile cases (issue 10, items 1, 2 and 4): each scenario of
tests/integration/test_hostile_*.py run once over real sockets, measured.

    python -m bench.hostile [--limit-s 20] [--only CASE]

For each case: connections the gateway made to the scripted stand-in, time until the call
ended (or "did not end" at ``--limit-s``), and for the memory cases the bytes held by code under
``gateway/`` (tracemalloc) before and after. Prints a Markdown table; docs/resilience.md quotes
it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from transcribe.v1 import transcribe_pb2 as pb

from tests.integration.conftest import LINEAR16, running_gateway
from tests.support.standin import DeepgramStandIn, Plan, counter_audio

_GATEWAY_FILES = [tracemalloc.Filter(True, "*/gateway/*")]


@dataclass
class Figure:
    case: str
    connections: int | None = None
    ended_after_s: float | None = None
    status: str = ""
    memory: str = ""


def _read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def _held() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces(_GATEWAY_FILES)
    return sum(stat.size for stat in snapshot.statistics("filename"))


def _counter(blocks: int) -> list[pb.StreamTranscribeRequest]:
    return [pb.StreamTranscribeRequest(config=LINEAR16)] + [
        pb.StreamTranscribeRequest(audio=counter_audio(k, 1)) for k in range(blocks)
    ]


async def _call(address: str, reqs: Any, limit_s: float) -> tuple[str, float]:
    """Run a call to its end (or ``limit_s``); its status and how long it took."""
    started = time.monotonic()

    async def run() -> str:
        async with grpc.aio.insecure_channel(address) as channel:
            call = channel.stream_stream(
                "/transcribe.v1.TranscribeService/StreamTranscribe",
                request_serializer=pb.StreamTranscribeRequest.SerializeToString,
                response_deserializer=pb.StreamTranscribeResponse.FromString,
            )(reqs)
            try:
                async for _ in call:
                    pass
            except grpc.aio.AioRpcError as exc:
                return str(exc.code().name)
            return "OK"

    try:
        status = await asyncio.wait_for(run(), limit_s)
    except TimeoutError:
        return f"did not end within {limit_s:g} s", time.monotonic() - started
    return status, time.monotonic() - started


async def _upstream_case(name: str, plan: Plan, blocks: int, limit_s: float, **settings: Any) -> Figure:
    async with DeepgramStandIn(default=plan) as standin:
        try:
            async with running_gateway(standin.url, **settings) as gw:
                status, took = await _call(gw.server.address, iter(_counter(blocks)), limit_s)
        except Exception as exc:  # an old gateway may not know a setting
            return Figure(name, status=f"cannot run: {type(exc).__name__}")
        return Figure(name, standin.handshakes, took, status)


async def same_audio(limit_s: float) -> Figure:
    return await _upstream_case(
        "close 1011 on the same audio on every connection (--retry-max-attempts 6)",
        Plan(fail_at_block=12),
        30,
        limit_s,
    )


async def huge_frame(limit_s: float) -> Figure:
    return await _upstream_case(
        "a 17 MB frame on the same audio on every connection",
        Plan(fail_at_block=12, huge_frame_bytes=17 * 1024 * 1024),
        30,
        limit_s,
    )


async def never_answers(limit_s: float) -> Figure:
    return await _upstream_case(
        "takes audio, never answers (--stall-timeout-s 2, --retry-max-elapsed-s 4)",
        Plan(stall_after_blocks=0),
        5,
        limit_s,
        stall_timeout_s=2.0,
        retry_max_elapsed_s=4.0,
    )


async def endless_flush(limit_s: float) -> Figure:
    chatter = '{"type":"SpeechStarted","channel":[0,1],"timestamp":0.0}'
    return await _upstream_case(
        "flush never ends, 2 blocks unfinalised (--stall-timeout-s 1, --retry-max-elapsed-s 3)",
        Plan(endless_flush_message=chatter),
        12,
        limit_s,
        stall_timeout_s=1.0,
        retry_max_elapsed_s=3.0,
    )


async def duration_inf(limit_s: float) -> Figure:
    return await _upstream_case(
        'results with "duration": "inf", a 1011 close after 12 frames',
        Plan(result_overrides={"duration": "inf"}, close_after_blocks=12),
        20,
        limit_s,
    )


async def finalize_flood(limit_s: float) -> Figure:
    flood = 50_000
    figure = Figure(f"{flood:,} Finalize controls, no audio")
    done = asyncio.Event()

    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        finalize = pb.StreamTranscribeRequest(control=pb.Control(finalize=pb.Finalize()))
        for _ in range(flood):
            yield finalize
        yield pb.StreamTranscribeRequest(audio=counter_audio(0, 1))
        yield finalize
        await done.wait()

    async with DeepgramStandIn() as standin, running_gateway(standin.url) as gw:
        started = time.monotonic()
        async with grpc.aio.insecure_channel(gw.server.address) as channel:
            call = channel.stream_stream(
                "/transcribe.v1.TranscribeService/StreamTranscribe",
                request_serializer=pb.StreamTranscribeRequest.SerializeToString,
                response_deserializer=pb.StreamTranscribeResponse.FromString,
            )(reqs())
            before = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limit_s):
                    async for response in call:
                        if response.HasField("session_started"):
                            before = _held()
                        if response.HasField("result"):
                            break
            after = _held()
            done.set()
            call.cancel()
        figure.ended_after_s = time.monotonic() - started
        figure.connections = standin.handshakes
        figure.memory = f"{before / 1e6:.2f} MB -> {after / 1e6:.2f} MB"
        figure.status = f"{len(standin.connections[0].texts) if standin.connections else 0} controls relayed"
    return figure


async def tiny_messages(limit_s: float) -> Figure:
    cap = 64 * 1024
    figure = Figure("2-byte audio messages, upstream never answers, --replay-buffer-bytes 64 KiB")
    peak = 0

    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        for _ in range(40_000):
            yield pb.StreamTranscribeRequest(audio=b"\1\0")

    async with DeepgramStandIn(default=Plan(transcribe=False)) as standin:
        async with running_gateway(
            standin.url, replay_buffer_bytes=cap, backpressure_timeout_s=1.0, stall_timeout_s=60
        ) as gw:
            base = _held()

            async def sample() -> None:
                nonlocal peak
                while True:
                    await asyncio.sleep(1.0)
                    peak = max(peak, _held() - base)

            sampler = asyncio.create_task(sample())
            figure.status, figure.ended_after_s = await _call(gw.server.address, reqs(), limit_s * 3)
            sampler.cancel()
            figure.connections = standin.handshakes
    figure.memory = f"peak {peak / 1024:.0f} KiB held for a {cap // 1024} KiB cap"
    return figure


async def no_config(limit_s: float) -> Figure:
    figure = Figure("a stream that never sends its config (--config-timeout-s 1)")
    hold = asyncio.Event()

    async def silent() -> AsyncIterator[pb.StreamTranscribeRequest]:
        await hold.wait()
        yield pb.StreamTranscribeRequest(config=LINEAR16)

    async with DeepgramStandIn() as standin:
        try:
            async with running_gateway(standin.url, config_timeout_s=1.0) as gw:
                figure.status, figure.ended_after_s = await _call(gw.server.address, silent(), limit_s)
        except Exception as exc:
            figure.status = f"cannot run: {type(exc).__name__} (no such setting)"
        hold.set()
    return figure


async def drain_not_reading(limit_s: float) -> Figure:
    figure = Figure("drain (--drain-grace-s 2) with a client that does not read its responses")
    big = {"channel": {"alternatives": [{"transcript": "x" * 8000, "confidence": 1.0, "words": []}]}}
    stop = asyncio.Event()

    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        for k in range(1500):
            yield pb.StreamTranscribeRequest(audio=counter_audio(k, 1))
        await stop.wait()

    async with DeepgramStandIn(default=Plan(blocks_per_result=1, result_overrides=big)) as standin:
        async with running_gateway(standin.url, drain_grace_s=2.0) as gw:
            async with grpc.aio.insecure_channel(gw.server.address) as channel:
                call = channel.stream_stream(
                    "/transcribe.v1.TranscribeService/StreamTranscribe",
                    request_serializer=pb.StreamTranscribeRequest.SerializeToString,
                    response_deserializer=pb.StreamTranscribeResponse.FromString,
                )(reqs())
                relayed = -1
                while not standin.connections or len(standin.connections[0].audio) != relayed:
                    relayed = len(standin.connections[0].audio) if standin.connections else -1
                    await asyncio.sleep(0.5)
                started = time.monotonic()
                try:
                    await asyncio.wait_for(gw.server.drain(), limit_s)
                    figure.status = "drain returned"
                except TimeoutError:
                    figure.status = f"drain still running after {limit_s:g} s"
                figure.ended_after_s = time.monotonic() - started
                stop.set()
                call.cancel()
            figure.connections = standin.handshakes
    return figure


async def sigterm_not_reading(limit_s: float) -> Figure:
    """The drain case against a ``gateway serve`` process: SIGTERM, then its exit status."""
    figure = Figure("SIGTERM to `gateway serve --drain-grace-s 2`, a client that does not read")
    big = {"channel": {"alternatives": [{"transcript": "x" * 8000, "confidence": 1.0, "words": []}]}}
    stop = asyncio.Event()

    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        for k in range(1500):
            yield pb.StreamTranscribeRequest(audio=counter_audio(k, 1))
        await stop.wait()

    async with DeepgramStandIn(default=Plan(blocks_per_result=1, result_overrides=big)) as standin:
        with tempfile.TemporaryDirectory() as tmp:
            ready = Path(tmp) / "ready"
            command = ["-m", "gateway", "serve", "--listen", "127.0.0.1:0", "--ready-file", str(ready)]
            command += ["--upstream-url", standin.url, "--drain-grace-s", "2"]
            process = await asyncio.create_subprocess_exec(
                sys.executable, *command, stderr=asyncio.subprocess.DEVNULL
            )
            try:
                address = ""
                for _ in range(600):
                    if address := _read(ready):
                        break
                    await asyncio.sleep(0.1)
                async with grpc.aio.insecure_channel(address) as channel:
                    call = channel.stream_stream(
                        "/transcribe.v1.TranscribeService/StreamTranscribe",
                        request_serializer=pb.StreamTranscribeRequest.SerializeToString,
                        response_deserializer=pb.StreamTranscribeResponse.FromString,
                    )(reqs())
                    relayed = -1
                    while not standin.connections or len(standin.connections[0].audio) != relayed:
                        relayed = len(standin.connections[0].audio) if standin.connections else -1
                        await asyncio.sleep(0.5)
                    started = time.monotonic()
                    process.send_signal(signal.SIGTERM)
                    try:
                        code = await asyncio.wait_for(process.wait(), limit_s)
                        figure.status = f"exit status {code}"
                    except TimeoutError:
                        figure.status = f"running after {limit_s:g} s"
                    figure.ended_after_s = time.monotonic() - started
                    stop.set()
                    call.cancel()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
        figure.connections = standin.handshakes
    return figure


CASES: list[Callable[[float], Awaitable[Figure]]] = [
    same_audio,
    huge_frame,
    never_answers,
    endless_flush,
    duration_inf,
    drain_not_reading,
    sigterm_not_reading,
    finalize_flood,
    tiny_messages,
    no_config,
]


async def measure(limit_s: float, only: str | None = None) -> list[Figure]:
    figures = []
    tracemalloc.start()
    try:
        for case in CASES:
            if only is not None and case.__name__ != only:
                continue
            figures.append(await case(limit_s))
            print(figures[-1], flush=True)
    finally:
        tracemalloc.stop()
    return figures


def table(figures: list[Figure]) -> str:
    lines = [
        "| case | upstream connections | call ended after | status | memory held by gateway code |",
        "|---|---|---|---|---|",
    ]
    for f in figures:
        ended = f"{f.ended_after_s:.2f} s" if f.ended_after_s is not None else "-"
        connections = "-" if f.connections is None else str(f.connections)
        lines.append(f"| {f.case} | {connections} | {ended} | {f.status} | {f.memory or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit-s", type=float, default=20.0)
    parser.add_argument("--only", choices=[case.__name__ for case in CASES], help="run one case")
    args = parser.parse_args()
    print(table(asyncio.run(measure(args.limit_s, args.only))))


if __name__ == "__main__":
    main()
