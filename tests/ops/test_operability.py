"""Operating the gateway: health, metrics, client auth, TLS, limits, drain, logs, secrecy."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc

from gateway import logs
from gateway.errors import Reason
from tests.conftest import TIMING
from tests.integration.conftest import (
    LINEAR16,
    TEST_KEY,
    collect,
    expect_error,
    requests,
    running_gateway,
    status_detail,
    words,
)
from tests.support.standin import BLOCK_SECONDS, DeepgramStandIn, Plan, counter_audio

S = grpc.StatusCode
SERVICE = "transcribe.v1.TranscribeService"


async def health_status(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return int(response.status)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def reason_of(error: grpc.RpcError) -> str:
    return str(status_detail(error, error_details_pb2.ErrorInfo).reason)


def metric(text: str, name: str) -> float:
    """The value of one sample line, by its full name with labels."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


# --- health ---------------------------------------------------------------------------------


async def test_health_serving_for_the_server_and_the_service(standin: DeepgramStandIn) -> None:
    async with running_gateway(standin.url) as gw:
        assert await health_status(gw.channel) == health_pb2.HealthCheckResponse.SERVING
        assert await health_status(gw.channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING


async def test_health_goes_not_serving_when_the_key_is_rejected_and_recovers() -> None:
    """A rejected upstream key fails every stream, so the service says so until one works again;
    the server stays SERVING, since restarting it (a failed liveness probe) would not help."""
    async with DeepgramStandIn([Plan(reject_status=401)]) as standin:
        async with running_gateway(standin.url) as gw:
            error, _ = await expect_error(gw, requests(LINEAR16))
            assert error.code() == S.FAILED_PRECONDITION
            assert await health_status(gw.channel, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await health_status(gw.channel) == health_pb2.HealthCheckResponse.SERVING
            await collect(gw.stub, requests(LINEAR16, counter_audio(0, 1)))
            assert await health_status(gw.channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING


# --- metrics --------------------------------------------------------------------------------


async def test_metrics_count_sessions_audio_connects_and_results() -> None:
    async with DeepgramStandIn([Plan(close_after_blocks=6), Plan(reject_status=503)]) as standin:
        async with running_gateway(standin.url, metrics_listen="127.0.0.1:0") as gw:
            responses = await collect(gw.stub, requests(LINEAR16, *(counter_audio(k, 1) for k in range(10))))
            text = await asyncio.to_thread(scrape, gw.server.metrics_port)
    labels = ",".join(
        [
            'grpc_method="StreamTranscribe"',
            'grpc_service="transcribe.v1.TranscribeService"',
            'grpc_type="bidi_stream"',
        ]
    )
    assert metric(text, "gateway_active_sessions") == 0
    assert metric(text, 'gateway_sessions_total{grpc_code="OK"}') == 1
    assert metric(text, "gateway_audio_received_seconds_total") == pytest.approx(0.8)
    assert metric(text, "gateway_audio_relayed_seconds_total") > 0.8
    assert metric(text, "gateway_audio_replayed_seconds_total") > 0
    assert metric(text, 'gateway_upstream_connects_total{outcome="ok"}') == 2
    assert metric(text, 'gateway_upstream_connects_total{outcome="http 503"}') == 1
    assert metric(text, 'gateway_upstream_reconnects_total{reason="close 1011"}') == 1
    assert metric(text, "gateway_time_to_first_result_seconds_count") == 1
    assert metric(text, "gateway_finalize_latency_seconds_count") == 1
    assert metric(text, f"grpc_server_started_total{{{labels}}}") == 1
    assert metric(text, f'grpc_server_handled_total{{grpc_code="OK",{labels}}}') == 1
    assert metric(text, f"grpc_server_msg_received_total{{{labels}}}") == 11
    # Counted per session and published in batches: exact once the call has ended.
    assert metric(text, f"grpc_server_msg_sent_total{{{labels}}}") == len(responses) >= 4


async def test_metrics_endpoint_answers_404_elsewhere(standin: DeepgramStandIn) -> None:
    async with running_gateway(standin.url, metrics_listen="127.0.0.1:0") as gw:
        with pytest.raises(urllib.error.HTTPError) as info:
            await asyncio.to_thread(
                urllib.request.urlopen, f"http://127.0.0.1:{gw.server.metrics_port}/", None, 5
            )
    assert info.value.code == 404
    info.value.close()


# --- client authentication ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ((), "missing credentials"),
        ((("authorization", "Bearer wrong"),), "invalid token"),
        ((("authorization", "Basic abc"),), "malformed credentials"),
    ],
)
async def test_streams_need_a_valid_bearer_token(
    standin: DeepgramStandIn, metadata: tuple[tuple[str, str], ...], problem: str
) -> None:
    async with running_gateway(standin.url, auth_tokens="t-one,t-two") as gw:
        error, _ = await expect_error(gw, requests(LINEAR16), metadata)
    assert error.code() == S.UNAUTHENTICATED
    assert problem in (error.details() or "")
    assert reason_of(error) == Reason.UNAUTHENTICATED
    assert standin.handshakes == 0


async def test_a_valid_token_passes_and_health_needs_none(standin: DeepgramStandIn, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# team tokens\nt-file\n\n")
    async with running_gateway(standin.url, auth_tokens_file=tokens) as gw:
        call = gw.stub.StreamTranscribe(
            requests(LINEAR16, counter_audio(0, 1)), metadata=(("authorization", "Bearer t-file"),)
        )
        responses = await collect_call(call)
        assert [w.word for w in words(responses)] == ["w0"]
        assert await health_status(gw.channel) == health_pb2.HealthCheckResponse.SERVING


async def collect_call(call: grpc.aio.StreamStreamCall) -> list[pb.StreamTranscribeResponse]:
    return [response async for response in call]


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            f"{name}.pem",
        )
    return d


async def test_tls_listener(standin: DeepgramStandIn, pki: Path) -> None:
    async with running_gateway(
        standin.url, tls_cert_file=pki / "server.pem", tls_key_file=pki / "server.key"
    ) as gw:
        credentials = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
        async with grpc.aio.secure_channel(gw.server.address, credentials) as channel:
            stub = pb_grpc.TranscribeServiceStub(channel)
            responses = [r async for r in stub.StreamTranscribe(requests(LINEAR16, counter_audio(0, 1)))]
        assert [w.word for w in words(responses)] == ["w0"]
        # A plaintext client cannot talk to a TLS listener.
        async with grpc.aio.insecure_channel(gw.server.address) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert info.value.code() == S.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate(standin: DeepgramStandIn, pki: Path) -> None:
    async with running_gateway(
        standin.url,
        tls_cert_file=pki / "server.pem",
        tls_key_file=pki / "server.key",
        tls_client_ca_file=pki / "ca.pem",
    ) as gw:
        ca = (pki / "ca.pem").read_bytes()
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(pki / "client.key").read_bytes(),
            certificate_chain=(pki / "client.pem").read_bytes(),
        )
        async with grpc.aio.secure_channel(gw.server.address, with_cert) as channel:
            assert await health_status(channel) == health_pb2.HealthCheckResponse.SERVING
        without = grpc.ssl_channel_credentials(root_certificates=ca)
        async with grpc.aio.secure_channel(gw.server.address, without) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert info.value.code() == S.UNAVAILABLE


# --- limits ---------------------------------------------------------------------------------


async def test_stream_cap_refuses_with_resource_exhausted(standin: DeepgramStandIn) -> None:
    gate = asyncio.Event()

    async def holding() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        await gate.wait()

    async with running_gateway(standin.url, max_streams=1) as gw:
        first = gw.stub.StreamTranscribe(holding())
        assert (await first.read()).HasField("session_started")
        error, _ = await expect_error(gw, requests(LINEAR16))
        assert error.code() == S.RESOURCE_EXHAUSTED
        assert "limit of 1 concurrent streams" in (error.details() or "")
        assert reason_of(error) == Reason.TOO_MANY_STREAMS
        gate.set()
        while await first.read() != grpc.aio.EOF:
            pass


async def seven_blocks_then_hold(sent: asyncio.Event) -> AsyncIterator[pb.StreamTranscribeRequest]:
    """Seven blocks of counter audio, then an open stream that sends nothing more."""
    yield pb.StreamTranscribeRequest(config=LINEAR16)
    for k in range(7):
        yield pb.StreamTranscribeRequest(audio=counter_audio(k, 1))
    sent.set()
    await asyncio.Event().wait()


async def test_session_length_limit_finalises_then_ends_out_of_range(standin: DeepgramStandIn) -> None:
    """At the maximum length the gateway stops taking audio, delivers every final, then OUT_OF_RANGE."""
    sent = asyncio.Event()
    async with running_gateway(standin.url, max_session_s=0.5 * TIMING) as gw:
        error, received = await expect_error(gw, seven_blocks_then_hold(sent))
    assert error.code() == S.OUT_OF_RANGE
    assert "maximum length" in (error.details() or "")
    assert reason_of(error) == Reason.SESSION_TOO_LONG
    assert sent.is_set()
    assert [w.word for w in words(received)] == [f"w{k}" for k in range(7)]
    assert received[-1].HasField("summary")
    assert standin.connections[0].texts[-1] == {"type": "CloseStream"}


async def test_limits_do_not_apply_to_the_flush_after_a_half_close() -> None:
    """A client that half-closed in time gets OK, however long the upstream's flush takes."""
    async with DeepgramStandIn(default=Plan(close_stream_delay_s=1.0 * TIMING)) as standin:
        async with running_gateway(
            standin.url, max_session_s=0.3 * TIMING, client_idle_timeout_s=0.2 * TIMING
        ) as gw:
            responses = await collect(gw.stub, requests(LINEAR16, counter_audio(0, 3)))
    assert [w.word for w in words(responses)] == ["w0", "w1", "w2"]
    assert responses[-1].HasField("summary")


async def test_max_lead_paces_a_client_running_ahead_of_real_time(standin: DeepgramStandIn) -> None:
    """With --max-lead-s, raw audio sent all at once is taken in at about real-time pace."""
    blocks = 12  # 0.96 s of audio
    async with running_gateway(standin.url, max_lead_s=0.2) as gw:
        started = asyncio.get_running_loop().time()
        responses = await collect(gw.stub, requests(LINEAR16, *(counter_audio(k, 1) for k in range(blocks))))
        elapsed = asyncio.get_running_loop().time() - started
    assert [w.word for w in words(responses)] == [f"w{k}" for k in range(blocks)]
    # Without pacing this takes a few milliseconds; paced, at least the audio less the lead and
    # the last chunk (the lead is checked before a chunk is taken in).
    assert elapsed >= blocks * BLOCK_SECONDS - 0.2 - BLOCK_SECONDS - 0.02


async def test_idle_client_is_finalised_then_deadline_exceeded(standin: DeepgramStandIn) -> None:
    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        yield pb.StreamTranscribeRequest(audio=counter_audio(0, 2))
        await asyncio.Event().wait()

    async with running_gateway(standin.url, client_idle_timeout_s=0.4 * TIMING) as gw:
        error, received = await expect_error(gw, reqs())
    assert error.code() == S.DEADLINE_EXCEEDED
    assert "sent nothing" in (error.details() or "")
    assert reason_of(error) == Reason.CLIENT_IDLE
    assert [w.word for w in words(received)] == ["w0", "w1"]


async def test_the_idle_limit_counts_from_the_clients_last_message(standin: DeepgramStandIn) -> None:
    """A client that sends less often than the idle limit but for longer than it is not ended;
    the limit ends it once it goes quiet (the limit's timer looks again at each deadline)."""
    idle_s = 0.4 * TIMING
    quiet_since: list[float] = []

    async def reqs() -> AsyncIterator[pb.StreamTranscribeRequest]:
        yield pb.StreamTranscribeRequest(config=LINEAR16)
        for k in range(6):
            yield pb.StreamTranscribeRequest(audio=counter_audio(k, 1))
            await asyncio.sleep(idle_s / 3)
        quiet_since.append(time.monotonic())
        await asyncio.Event().wait()

    async with running_gateway(standin.url, client_idle_timeout_s=idle_s) as gw:
        error, received = await expect_error(gw, reqs())
    ended_after = time.monotonic() - quiet_since[0]
    assert reason_of(error) == Reason.CLIENT_IDLE
    assert [w.word for w in words(received)] == [f"w{k}" for k in range(6)]
    assert ended_after >= idle_s * 2 / 3, ended_after


async def test_oversized_message_is_refused(standin: DeepgramStandIn) -> None:
    """Over --max-message-bytes: RESOURCE_EXHAUSTED with MESSAGE_TOO_LARGE; over twice the
    limit gRPC refuses the message itself, with the same code."""
    async with running_gateway(standin.url, max_message_bytes=4096) as gw:
        error, _ = await expect_error(gw, requests(LINEAR16, b"\0" * 6000))
        assert error.code() == S.RESOURCE_EXHAUSTED
        assert reason_of(error) == Reason.MESSAGE_TOO_LARGE
        assert "6003 bytes is over the gateway's limit of 4096" in (error.details() or "")
        first, _ = await expect_error(gw, [pb.StreamTranscribeRequest(audio=b"\0" * 6000)])
        assert (first.code(), reason_of(first)) == (S.RESOURCE_EXHAUSTED, Reason.MESSAGE_TOO_LARGE)
        error, _ = await expect_error(gw, requests(LINEAR16, b"\0" * 9000))
    assert error.code() == S.RESOURCE_EXHAUSTED


# --- drain ----------------------------------------------------------------------------------


async def test_drain_finalises_open_streams_and_refuses_new_ones(standin: DeepgramStandIn) -> None:
    """Drain: going_away, every final of the audio sent, UNAVAILABLE with the resume point."""
    sent = asyncio.Event()
    async with running_gateway(standin.url, drain_grace_s=5) as gw:
        call = gw.stub.StreamTranscribe(seven_blocks_then_hold(sent))
        assert (await call.read()).HasField("session_started")
        await sent.wait()
        await asyncio.sleep(0.2 * TIMING)  # let the gateway read what was sent
        drain = asyncio.create_task(gw.server.drain())
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            while (response := await call.read()) != grpc.aio.EOF:
                received.append(response)
        await drain
    kinds = [r.WhichOneof("response") for r in received]
    [going_away] = [r.upstream_event.going_away for r in received if r.HasField("upstream_event")]
    assert going_away.grace_seconds == 5
    assert [w.word for w in words(received)] == [f"w{k}" for k in range(7)]
    assert kinds[-1] == "summary"
    assert info.value.code() == S.UNAVAILABLE
    assert reason_of(info.value) == Reason.DRAINING
    point = status_detail(info.value, pb.ResumePoint)
    assert point.committed_seconds == point.received_seconds > 0


async def test_draining_gateway_reports_not_serving_and_refuses_streams(standin: DeepgramStandIn) -> None:
    async with running_gateway(standin.url, drain_grace_s=1) as gw:
        gw.server._availability.draining = True
        await gw.server._availability.update()
        assert await health_status(gw.channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await health_status(gw.channel, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
        error, _ = await expect_error(gw, requests(LINEAR16))
        assert error.code() == S.UNAVAILABLE
        assert "shutting down" in (error.details() or "")
        assert reason_of(error) == Reason.DRAINING


# --- logs and secrecy -----------------------------------------------------------------------


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure("DEBUG", "json")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


async def test_json_logs_carry_session_and_upstream_ids(captured_logs: io.StringIO) -> None:
    async with DeepgramStandIn([Plan(close_after_blocks=3)]) as standin:
        async with running_gateway(standin.url) as gw:
            responses = await collect(gw.stub, requests(LINEAR16, *(counter_audio(k, 1) for k in range(6))))
    entries = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    session_id = responses[0].session_started.session_id
    mine = [e for e in entries if e.get("session_id") == session_id]
    assert any(e.get("upstream_request_id") == standin.connections[0].request_id for e in mine)
    assert any("reconnecting" in e["message"] for e in mine)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)


async def test_the_key_never_leaks(captured_logs: io.StringIO) -> None:
    """The Deepgram key appears in no log line, metric, response, status or error detail."""
    plans = [
        Plan(close_after_blocks=2),
        Plan(reject_status=401, reject_body=f'{{"err_msg":"bad key {TEST_KEY}"}}'),
    ]
    async with DeepgramStandIn(plans) as standin:
        async with running_gateway(standin.url, metrics_listen="127.0.0.1:0") as gw:
            error, received = await expect_error(
                gw, requests(LINEAR16, *(counter_audio(k, 1) for k in range(5)))
            )
            text = await asyncio.to_thread(scrape, gw.server.metrics_port)
            settings_repr = repr(gw.server.settings)
    assert standin.connections[0].headers["Authorization"] == f"Token {TEST_KEY}", "the key was used"
    gateway_logs = [line for line in captured_logs.getvalue().splitlines() if '"tests.standin"' not in line]
    assert any("Authorization" in line for line in gateway_logs), "the handshake headers were not logged"
    haystacks = {
        "logs": "\n".join(gateway_logs),
        "metrics": text,
        "responses": "".join(str(r) for r in received),
        "status": f"{error.details()} {error.trailing_metadata()}",
        "settings": settings_repr,
    }
    for where, haystack in haystacks.items():
        assert TEST_KEY not in haystack, f"the key leaked into {where}"
