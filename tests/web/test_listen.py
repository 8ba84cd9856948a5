"""``/v1/listen`` on the gateway, over real websockets, with the embedded engine behind."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import TIMING
from tests.web.conftest import CLIENT_TOKEN, SAMPLE_WORDS, engine_url, sample_pcm, web_gateway, words_of

pytestmark = pytest.mark.engine

QUERY = "model=nova-3&encoding=linear16&sample_rate=16000&interim_results=true&punctuate=true"


async def stream_sample(url: str, **connect_args: Any) -> tuple[list[dict[str, Any]], int | None, Any]:
    """Send the sample at 4x real time, then CloseStream; read to the server's close."""
    pcm = sample_pcm()
    messages: list[dict[str, Any]] = []
    async with connect(url, **connect_args) as socket:
        assert socket.response is not None
        headers = socket.response.headers

        async def send() -> None:
            step = 3200
            for offset in range(0, len(pcm), step):
                await socket.send(pcm[offset : offset + step])
                await asyncio.sleep(0.025)
            await socket.send(json.dumps({"type": "CloseStream"}))

        sender = asyncio.create_task(send())
        async with asyncio.timeout(90 * TIMING):
            with pytest.raises(ConnectionClosed):
                while True:
                    messages.append(json.loads(await socket.recv()))
        await sender
    return messages, socket.close_code, headers


async def test_sample_is_transcribed_and_the_stream_ends_like_deepgrams() -> None:
    """Results with the sample's words, one Metadata last, then close 1000; one request id."""
    async with engine_url() as upstream, web_gateway(upstream) as gateway:
        url = f"ws://127.0.0.1:{gateway.http_port}/v1/listen?{QUERY}"
        messages, code, headers = await stream_sample(url)
    assert code == 1000
    assert messages[-1]["type"] == "Metadata"
    assert [m["type"] for m in messages].count("Metadata") == 1
    results = [m for m in messages if m["type"] == "Results"]
    text = " ".join(m["channel"]["alternatives"][0]["transcript"] for m in results if m["is_final"])
    assert words_of(text) == SAMPLE_WORDS
    request_id = headers["dg-request-id"]
    assert {m["metadata"]["request_id"] for m in results} == {request_id}
    assert messages[-1]["request_id"] == request_id
    assert messages[-1]["duration"] == pytest.approx(len(sample_pcm()) / 32000, abs=0.01)
    assert not [m for m in messages if m["type"] == "GatewayEvent"], "events were not asked for"


async def test_gateway_events_only_when_asked() -> None:
    """gateway_events=true adds a GatewayEvent session_started, and never reaches the upstream."""
    async with engine_url() as upstream, web_gateway(upstream) as gateway:
        url = f"ws://127.0.0.1:{gateway.http_port}/v1/listen?{QUERY}&gateway_events=true"
        messages, code, _ = await stream_sample(url)
    assert code == 1000
    events = [m for m in messages if m["type"] == "GatewayEvent"]
    assert events[0]["event"] == "session_started"
    assert events[0]["session_id"]


@pytest.mark.parametrize(
    ("query", "status", "needle"),
    [
        ("encoding=linear16", 400, "sample_rate"),
        ("encoding=wav2&sample_rate=16000", 400, "encoding"),
        ("interim_results=maybe", 400, "interim_results"),
        ("utterance_end_ms=1000", 400, "interim_results"),
    ],
)
async def test_bad_options_are_refused_with_deepgrams_400(query: str, status: int, needle: str) -> None:
    """A bad option: HTTP 400, Deepgram's error body and headers, no socket."""
    async with web_gateway("ws://127.0.0.1:9/v1/listen") as gateway:
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://127.0.0.1:{gateway.http_port}/v1/listen?{query}"):
                pass
    response = info.value.response
    assert response.status_code == status
    body = json.loads(response.body)
    assert body["err_code"] == "Bad Request"
    assert needle in body["err_msg"]
    assert body["request_id"] == response.headers["dg-request-id"]
    assert response.headers["dg-error"] == body["err_msg"]


async def test_client_token_is_required_when_configured() -> None:
    """With client tokens: 401 without one or with a wrong one; Token, Bearer and the
    browser's subprotocol pair all pass, and the scheme is answered as the subprotocol."""
    async with engine_url() as upstream, web_gateway(upstream, auth_tokens=CLIENT_TOKEN) as gateway:
        url = f"ws://127.0.0.1:{gateway.http_port}/v1/listen?{QUERY}"
        for headers in ({}, {"Authorization": "Token wrong"}):
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, additional_headers=headers):
                    pass
            assert info.value.response.status_code == 401
            assert json.loads(info.value.response.body)["err_code"] == "INVALID_AUTH"
        for scheme in ("Token", "token", "Bearer"):
            async with connect(url, additional_headers={"Authorization": f"{scheme} {CLIENT_TOKEN}"}) as ws:
                await ws.send(json.dumps({"type": "CloseStream"}))
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv()
            assert ws.close_code == 1000
        async with connect(url, subprotocols=["token", CLIENT_TOKEN]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "token"
            await ws.close()


async def test_unreachable_upstream_is_503_at_the_handshake() -> None:
    """The upstream refusing every connection: the handshake fails with 503, not a dead socket."""
    async with web_gateway(
        "ws://127.0.0.1:9/v1/listen", retry_max_attempts=2, retry_max_elapsed_s=1.0
    ) as gateway:
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://127.0.0.1:{gateway.http_port}/v1/listen?{QUERY}"):
                pass
    assert info.value.response.status_code == 503
    assert gateway.metrics.registry.get_sample_value("gateway_active_sessions") == 0


async def http(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    """One plain HTTP request: status, headers, body."""
    import urllib.error
    import urllib.request

    def call() -> tuple[int, Any, str]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read().decode()

    return await asyncio.to_thread(call)


async def test_page_and_grant_over_http() -> None:
    """The page is served; a grant needs a client token, honours ttl_seconds, and answers a
    preflight from an allowed origin only; unknown paths are 404."""
    async with web_gateway(
        "ws://127.0.0.1:9/v1/listen", auth_tokens=CLIENT_TOKEN, allowed_origins="https://app.example"
    ) as gateway:
        port = gateway.http_port
        status, headers, body = await http(port, "GET", "/")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert "/static/app.js" in body
        assert (await http(port, "GET", "/static/worklet.js"))[0] == 200
        assert (await http(port, "GET", "/static/../config.py"))[0] == 404
        assert (await http(port, "POST", "/v1/auth/grant"))[0] == 401
        granted = await http(
            port, "POST", "/v1/auth/grant?ttl_seconds=120", {"Authorization": f"Token {CLIENT_TOKEN}"}
        )
        assert granted[0] == 200
        assert json.loads(granted[2])["expires_in"] == 120
        token = json.loads(granted[2])["access_token"]
        # An access token streams but cannot mint more.
        assert (await http(port, "POST", "/v1/auth/grant", {"Authorization": f"Bearer {token}"}))[0] == 401
        assert (
            await http(
                port, "POST", "/v1/auth/grant?ttl_seconds=99999", {"Authorization": f"Token {CLIENT_TOKEN}"}
            )
        )[0] == 400
        status, headers, _ = await http(port, "OPTIONS", "/v1/auth/grant", {"Origin": "https://app.example"})
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == "https://app.example"
        status, headers, _ = await http(port, "OPTIONS", "/v1/auth/grant", {"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in headers
        assert (
            await http(
                port,
                "POST",
                "/v1/auth/grant",
                {"Origin": "https://evil.example", "Authorization": f"Token {CLIENT_TOKEN}"},
            )
        )[0] == 403
        assert (await http(port, "GET", "/nothing"))[0] == 404


async def test_foreign_origin_is_refused() -> None:
    """A page on another origin gets 403 at the handshake unless allowed."""
    async with (
        engine_url() as upstream,
        web_gateway(upstream, allowed_origins="https://app.example") as gateway,
    ):
        url = f"ws://127.0.0.1:{gateway.http_port}/v1/listen?{QUERY}"
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, origin="https://evil.example"):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403
        async with connect(url, origin="https://app.example") as ws:  # type: ignore[arg-type]
            await ws.close()


async def test_stream_cap_counts_web_streams() -> None:
    """--max-streams counts websocket streams too: one over the cap is 429."""
    async with engine_url() as upstream, web_gateway(upstream, max_streams=1) as gateway:
        url = f"ws://127.0.0.1:{gateway.http_port}/v1/listen?{QUERY}"
        async with connect(url) as first:
            with pytest.raises(InvalidStatus) as info:
                async with connect(url):
                    pass
            assert info.value.response.status_code == 429
            assert json.loads(info.value.response.body)["err_code"] == "TOO_MANY_REQUESTS"
            await first.close()


async def test_drain_flushes_web_streams_and_closes_1012() -> None:
    """On drain an open web stream is told, gets the finals of the audio it sent and Metadata,
    then close 1012 (service restart), which a reconnecting client takes as "come back"."""
    pcm = sample_pcm()[: 32000 * 4]
    async with engine_url() as upstream, web_gateway(upstream, drain_grace_s=20) as gateway:
        url = f"ws://127.0.0.1:{gateway.http_port}/v1/listen?{QUERY}&gateway_events=true"
        messages: list[dict[str, Any]] = []
        async with connect(url) as ws:
            for offset in range(0, len(pcm), 3200):
                await ws.send(pcm[offset : offset + 3200])
            async with asyncio.timeout(60 * TIMING):
                while not any(m["type"] == "Results" for m in messages):
                    messages.append(json.loads(await ws.recv()))
                drain = asyncio.create_task(gateway.drain())
                with pytest.raises(ConnectionClosed):
                    while True:
                        messages.append(json.loads(await ws.recv()))
                await drain
    assert ws.close_code == 1012
    assert messages[-1]["type"] == "Metadata"
    assert messages[-1]["duration"] == pytest.approx(4.0, abs=0.01)
    going = next(i for i, m in enumerate(messages) if m.get("event") == "going_away")
    assert any(m["type"] == "Results" and m["is_final"] for m in messages[going:])
    finals = [m for m in messages if m["type"] == "Results" and m["is_final"]]
    text = " ".join(m["channel"]["alternatives"][0]["transcript"] for m in finals)
    assert words_of(text)[:3] == SAMPLE_WORDS[:3]
