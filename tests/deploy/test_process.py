"""The gateway as operators run it: a real process, probed with grpcurl, grpc_health_probe and
an HTTP scrape, and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from grpc_status import rpc_status
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc

from tests.support.gateway_process import gateway_process
from tests.support.grpc_gateway import LINEAR16, words
from tests.support.paths import DEPLOY
from tests.support.processes import clean_env, free_port, run, tail, wait_for_exit
from tests.support.standin import BLOCK_BYTES, BLOCK_SECONDS, DeepgramStandIn, Plan, counter_audio
from tests.support.timing import TIMING

SERVICE = "transcribe.v1.TranscribeService"
# grpc_health_probe's exit codes.
PROBE_SERVING = 0
PROBE_NOT_SERVING = 4


async def test_grpcurl_lists_and_describes_the_service_by_reflection(
    grpcurl_bin: str, tmp_path: Path
) -> None:
    """grpcurl finds TranscribeService, its method and its messages through server reflection."""
    async with DeepgramStandIn() as standin:
        async with gateway_process(tmp_path, "--upstream-url", standin.url) as gw:
            listed = await run([grpcurl_bin, "-plaintext", gw.address, "list"])
            assert listed.returncode == 0, listed.describe()
            assert SERVICE in listed.stdout.split(), listed.stdout
            assert "grpc.health.v1.Health" in listed.stdout.split(), listed.stdout

            methods = await run([grpcurl_bin, "-plaintext", gw.address, "list", SERVICE])
            assert methods.returncode == 0, methods.describe()
            assert f"{SERVICE}.StreamTranscribe" in methods.stdout.split(), methods.stdout

            described = await run(
                [grpcurl_bin, "-plaintext", gw.address, "describe", "transcribe.v1.StreamingConfig"]
            )
            assert described.returncode == 0, described.describe()
            assert "message StreamingConfig {" in described.stdout, described.stdout
            assert "sample_rate" in described.stdout, described.stdout


async def test_grpcurl_streams_audio_and_gets_words(grpcurl_bin: str, tmp_path: Path) -> None:
    """A StreamTranscribe call made with grpcurl alone (JSON in, JSON out) gets every word."""
    blocks = 10
    audio = counter_audio(0, blocks)
    messages = [
        {"config": {"encoding": "AUDIO_ENCODING_LINEAR16", "sampleRate": 16000}},
        *({"audio": _b64(audio[i : i + 2 * BLOCK_BYTES])} for i in range(0, len(audio), 2 * BLOCK_BYTES)),
    ]
    async with DeepgramStandIn() as standin:
        async with gateway_process(tmp_path, "--upstream-url", standin.url) as gw:
            call = await run(
                [grpcurl_bin, "-plaintext", "-d", "@", gw.address, f"{SERVICE}/StreamTranscribe"],
                stdin="\n".join(json.dumps(m) for m in messages),
            )
    assert call.returncode == 0, call.describe()
    responses = list(_json_stream(call.stdout))
    # grpcurl prints the proto's field names.
    assert "session_started" in responses[0], responses[0]
    assert "summary" in responses[-1], responses[-1]
    said = [
        w["word"]
        for r in responses
        if r.get("result", {}).get("is_final")
        for w in r["result"]["alternatives"][0]["words"]
    ]
    assert said == [f"w{n}" for n in range(blocks)]


async def test_a_tokens_file_guards_streams_but_not_health_or_reflection(
    grpcurl_bin: str, health_probe_bin: str, tmp_path: Path
) -> None:
    """With --auth-tokens-file (as the shared-service manifest mounts it), grpcurl's stream needs
    `authorization: Bearer <token>`; health (for probes) and reflection (for grpcurl) do not."""
    tokens = tmp_path / "tokens"
    tokens.write_text("# client tokens\ntok-alpha-0123456789\ntok-beta-9876543210\n")
    request = json.dumps({"config": {"encoding": "AUDIO_ENCODING_LINEAR16", "sample_rate": 16000}})
    async with DeepgramStandIn() as standin:
        async with gateway_process(
            tmp_path, "--upstream-url", standin.url, "--auth-tokens-file", str(tokens)
        ) as gw:
            call = [grpcurl_bin, "-plaintext", "-d", "@"]
            target = [gw.address, f"{SERVICE}/StreamTranscribe"]
            refused = await run([*call, *target], stdin=request)
            assert refused.returncode != 0 and "Unauthenticated" in refused.stderr, refused.describe()
            wrong = await run([*call, "-H", "authorization: Bearer tok-gamma", *target], stdin=request)
            assert wrong.returncode != 0 and "Unauthenticated" in wrong.stderr, wrong.describe()
            allowed = await run(
                [*call, "-H", "authorization: Bearer tok-beta-9876543210", *target], stdin=request
            )
            assert allowed.returncode == 0, allowed.describe()
            assert "summary" in _json_stream(allowed.stdout)[-1]

            listed = await run([grpcurl_bin, "-plaintext", gw.address, "list"])
            assert listed.returncode == 0 and SERVICE in listed.stdout.split(), listed.describe()
            probe = await run([health_probe_bin, f"-addr={gw.address}", f"-service={SERVICE}"])
            assert probe.returncode == PROBE_SERVING, probe.describe()


async def test_grpc_health_probe_reports_serving(health_probe_bin: str, tmp_path: Path) -> None:
    """grpc_health_probe (what Docker and older Kubernetes probe with) sees SERVING for the
    server and for TranscribeService."""
    async with DeepgramStandIn() as standin:
        async with gateway_process(tmp_path, "--upstream-url", standin.url) as gw:
            for extra in ([], [f"-service={SERVICE}"]):
                probe = await run([health_probe_bin, f"-addr={gw.address}", *extra])
                assert probe.returncode == PROBE_SERVING, probe.describe()
                assert "SERVING" in probe.stdout + probe.stderr


async def test_docker_healthcheck_script_reports_serving(tmp_path: Path) -> None:
    """deploy/docker/healthcheck.py (the image's HEALTHCHECK) exits 0 against a live gateway and
    1 where nothing listens."""
    script = str(DEPLOY / "docker" / "healthcheck.py")
    async with DeepgramStandIn() as standin:
        async with gateway_process(tmp_path, "--upstream-url", standin.url) as gw:
            ok = await run([sys.executable, script, gw.address, SERVICE])
            assert ok.returncode == 0, ok.describe()
            assert ok.stdout.strip() == "SERVING"
    down = await run([sys.executable, script, f"127.0.0.1:{free_port()}"])
    assert down.returncode == 1, down.describe()


async def test_metrics_port_answers_a_plain_http_scrape(tmp_path: Path) -> None:
    """--metrics-listen serves Prometheus text at /metrics that counts a finished session."""
    port = free_port()
    async with DeepgramStandIn() as standin:
        async with gateway_process(
            tmp_path, "--upstream-url", standin.url, "--metrics-listen", f"127.0.0.1:{port}"
        ) as gw:
            async with grpc.aio.insecure_channel(gw.address) as channel:
                stub = pb_grpc.TranscribeServiceStub(channel)
                reqs = [
                    pb.StreamTranscribeRequest(config=LINEAR16),
                    pb.StreamTranscribeRequest(audio=counter_audio(0, 5)),
                ]
                responses = [r async for r in stub.StreamTranscribe(iter(reqs))]
            assert [w.word for w in words(responses)] == [f"w{n}" for n in range(5)]
            status, content_type, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain"), content_type
    samples = [line for line in body.splitlines() if line.startswith("gateway_") and not line.startswith("#")]
    assert samples, body
    assert "# TYPE gateway_" in body
    assert any(line.startswith("gateway_sessions") for line in samples), samples


async def test_sigterm_drains_open_streams_then_exits_within_the_grace(tmp_path: Path) -> None:
    """SIGTERM to the process mid-stream: the stream gets going_away, then the final results of
    all the audio it sent, then UNAVAILABLE with a ResumePoint; meanwhile new streams are
    refused with UNAVAILABLE; the process exits within the grace period.

    A second stream whose upstream hangs keeps the drain open for the whole grace period, so
    the refusal is checked while it lasts."""
    grace_s = 4.0 * TIMING
    blocks = 12
    plans = [Plan(), Plan(stall_after_blocks=0)]  # stream A answers; stream B's upstream hangs
    async with DeepgramStandIn(plans) as standin:
        async with gateway_process(
            tmp_path, "--upstream-url", standin.url, "--drain-grace-s", str(grace_s),
            stop_grace_s=grace_s + 10,
        ) as gw:  # fmt: skip
            async with grpc.aio.insecure_channel(gw.address) as channel:
                stub = pb_grpc.TranscribeServiceStub(channel)
                a_sent = asyncio.Event()
                hold = asyncio.Event()

                async def a_requests() -> AsyncIterator[pb.StreamTranscribeRequest]:
                    yield pb.StreamTranscribeRequest(config=LINEAR16)
                    audio = counter_audio(0, blocks)
                    for i in range(0, len(audio), 2 * BLOCK_BYTES):
                        yield pb.StreamTranscribeRequest(audio=audio[i : i + 2 * BLOCK_BYTES])
                    a_sent.set()
                    await hold.wait()  # never half-closes: the drain must end it

                async def b_requests() -> AsyncIterator[pb.StreamTranscribeRequest]:
                    yield pb.StreamTranscribeRequest(config=LINEAR16)
                    yield pb.StreamTranscribeRequest(audio=counter_audio(0, 1))
                    await hold.wait()

                a_call = stub.StreamTranscribe(a_requests())
                a_responses: list[pb.StreamTranscribeResponse] = []
                # Before the signal: blocks 0-9 answered (a result per 5 blocks) and relayed...
                while len(words(a_responses)) < 10:
                    response = await asyncio.wait_for(a_call.read(), 10 * TIMING)
                    assert isinstance(response, pb.StreamTranscribeResponse), response
                    a_responses.append(response)
                # ...and every byte of A's audio relayed upstream.
                await a_sent.wait()
                await _until(
                    lambda: (
                        len(standin.connections) >= 1
                        and len(standin.connections[0].audio) == blocks * BLOCK_BYTES
                    )
                )
                b_call = stub.StreamTranscribe(b_requests())
                assert (await b_call.read()).WhichOneof("response") == "session_started"
                await _until(lambda: len(standin.connections) >= 2 and len(standin.connections[1].audio) > 0)

                signalled = time.monotonic()
                gw.process.send_signal(signal.SIGTERM)
                a_responses += await asyncio.wait_for(_rest(a_call), 10 * TIMING)  # status checked below
                a_code = await asyncio.wait_for(a_call.code(), 10 * TIMING)
                resume_point = await _resume_point(a_call)

                # The drain is still running (B holds it): new streams are refused.
                # The late stream writes nothing before its refusal: grpc-python reports a write
                # that races with the server's refusal as INTERNAL (grpc/grpc#36066).
                async def late_requests() -> AsyncIterator[pb.StreamTranscribeRequest]:
                    await hold.wait()
                    yield pb.StreamTranscribeRequest(config=LINEAR16)

                late = stub.StreamTranscribe(late_requests())
                late_code = await asyncio.wait_for(late.code(), 10 * TIMING)
                assert late_code == grpc.StatusCode.UNAVAILABLE, await late.details()
                drain_open = time.monotonic() - signalled < grace_s

                exit_code = await wait_for_exit(gw.process, grace_s + 5 * TIMING)
                assert exit_code is not None, (
                    f"still running {grace_s + 5} s after SIGTERM:\n{tail(gw.log_path)}"
                )
                # B, whose upstream never answered, was told too and cut at the end of the grace.
                # (Its responses must be read for grpc.aio to deliver its status.)
                b_responses = await asyncio.wait_for(_rest(b_call), 10 * TIMING)
                b_code = await asyncio.wait_for(b_call.code(), 10 * TIMING)
                hold.set()
            exited_after = time.monotonic() - signalled

    assert drain_open, "the refusal was checked after the grace period"
    kinds = [r.WhichOneof("response") for r in a_responses]
    assert kinds[0] == "session_started", kinds
    going = [
        i
        for i, r in enumerate(a_responses)
        if r.HasField("upstream_event") and r.upstream_event.HasField("going_away")
    ]
    assert going, kinds
    assert a_responses[going[0]].upstream_event.going_away.grace_seconds == grace_s
    # Every final word of the audio A sent arrives: blocks 0-9 came before the signal; the
    # drain's Finalize brings 10 and 11, after going_away.
    assert [w.word for w in words(a_responses)] == [f"w{n}" for n in range(blocks)]
    assert [w.word for w in words(a_responses[going[0] :])] == ["w10", "w11"]
    assert a_code == grpc.StatusCode.UNAVAILABLE, a_code
    assert resume_point is not None, "no ResumePoint in the status details"
    assert abs(resume_point.committed_seconds - blocks * BLOCK_SECONDS) < 1e-6, resume_point
    assert exited_after < grace_s + 3 * TIMING, exited_after
    assert any(r.upstream_event.HasField("going_away") for r in b_responses), b_responses
    assert b_code == grpc.StatusCode.UNAVAILABLE, b_code


async def test_json_logs_carry_session_ids_and_never_the_key(tmp_path: Path) -> None:
    """`gateway --log-format json` writes only JSON objects, one per line; a session's lines
    carry its session and upstream request ids; the Deepgram key appears nowhere, even at DEBUG."""
    key = "dg-deploy-test-key-5f0c1e2d3a4b"
    async with DeepgramStandIn() as standin:
        async with gateway_process(
            tmp_path,
            "--upstream-url",
            standin.url,
            global_flags=["--log-format", "json", "--log-level", "DEBUG"],
            env=clean_env(DEEPGRAM_API_KEY=key),
        ) as gw:
            async with grpc.aio.insecure_channel(gw.address) as channel:
                stub = pb_grpc.TranscribeServiceStub(channel)
                reqs = [
                    pb.StreamTranscribeRequest(config=LINEAR16),
                    pb.StreamTranscribeRequest(audio=counter_audio(0, 5)),
                ]
                responses = [r async for r in stub.StreamTranscribe(iter(reqs))]
        log = gw.log  # complete: the process has exited
    assert standin.connections[0].headers["Authorization"] == f"Token {key}"  # it was used
    started = responses[0].session_started
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert entries and all(
        isinstance(e, dict) and {"time", "level", "logger", "message"} <= e.keys() for e in entries
    )
    session_lines = [e for e in entries if e.get("session_id") == started.session_id]
    assert session_lines, log
    assert any(e.get("upstream_request_id") == started.upstream_request_id for e in session_lines), log
    assert key not in log
    assert key[-12:] not in log


async def test_health_probe_reads_not_serving_during_the_drain(health_probe_bin: str, tmp_path: Path) -> None:
    """While a SIGTERMed gateway drains, grpc_health_probe connects and reads NOT_SERVING, so a
    load balancer's active health check takes the replica out before it is gone."""
    grace_s = 4.0 * TIMING
    async with DeepgramStandIn(default=Plan(stall_after_blocks=0)) as standin:  # the upstream hangs
        async with gateway_process(
            tmp_path, "--upstream-url", standin.url, "--drain-grace-s", str(grace_s),
            stop_grace_s=grace_s + 10,
        ) as gw:  # fmt: skip
            async with grpc.aio.insecure_channel(gw.address) as channel:
                stub = pb_grpc.TranscribeServiceStub(channel)
                hold = asyncio.Event()

                async def held_requests() -> AsyncIterator[pb.StreamTranscribeRequest]:
                    yield pb.StreamTranscribeRequest(config=LINEAR16)
                    yield pb.StreamTranscribeRequest(audio=counter_audio(0, 1))
                    await hold.wait()

                call = stub.StreamTranscribe(held_requests())
                assert (await call.read()).WhichOneof("response") == "session_started"
                await _until(lambda: bool(standin.connections) and len(standin.connections[0].audio) > 0)
                signalled = time.monotonic()
                gw.process.send_signal(signal.SIGTERM)
                await _until(lambda: "draining" in gw.log)
                probes = [
                    await run([health_probe_bin, f"-addr={gw.address}", *extra])
                    for extra in ([], [f"-service={SERVICE}"])
                ]
                during_grace = time.monotonic() - signalled < grace_s
                call.cancel()
                hold.set()
    assert during_grace
    for probe in probes:
        assert probe.returncode == PROBE_NOT_SERVING, probe.describe()


async def _rest(call: grpc.aio.StreamStreamCall) -> list[pb.StreamTranscribeResponse]:
    """The call's remaining responses, up to its end (an error status ends it too)."""
    out: list[pb.StreamTranscribeResponse] = []
    with contextlib.suppress(grpc.aio.AioRpcError):
        while (response := await call.read()) is not grpc.aio.EOF:
            assert isinstance(response, pb.StreamTranscribeResponse)
            out.append(response)
    return out


async def _until(condition: object, timeout_s: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s * TIMING
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _resume_point(call: grpc.aio.StreamStreamCall) -> pb.ResumePoint | None:
    """The ResumePoint in the call's rich status details, if any."""
    status = await rpc_status.aio.from_call(call)
    if status is None:
        return None
    for detail in status.details:
        point = pb.ResumePoint()
        if detail.Unpack(point):
            return point
    return None


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), str(response.headers.get("Content-Type", "")), response.read().decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _json_stream(text: str) -> list[dict[str, Any]]:
    """grpcurl prints one pretty JSON object per response."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        value, i = decoder.raw_decode(text, i)
        out.append(value)
    return out
