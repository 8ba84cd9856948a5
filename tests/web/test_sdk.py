"""Deepgram's official SDKs, unchanged but for their URL, against the gateway's /v1/listen:
``deepgram-sdk`` (PyPI) and ``@deepgram/sdk`` (npm, installed by tools/install-browser.sh)."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import pytest
from deepgram import AsyncDeepgramClient
from deepgram.core.events import EventType
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results

from gateway.server import GatewayServer
from tests.conftest import TIMING
from tests.web.conftest import (
    CLIENT_TOKEN,
    ROOT,
    SAMPLE,
    SAMPLE_WORDS,
    engine_url,
    grant,
    sample_pcm,
    web_gateway,
    words_of,
)

pytestmark = [
    pytest.mark.engine,
    # The SDK itself imports websockets' deprecated names; that is its business, not ours.
    pytest.mark.filterwarnings("ignore:websockets.exceptions.InvalidStatusCode is deprecated"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated"),
    pytest.mark.filterwarnings("ignore:websockets.client.WebSocketClientProtocol is deprecated"),
]

NODE_SDK = ROOT / "tests" / "web" / "node-sdk"


def environment(gateway: GatewayServer) -> DeepgramClientEnvironment:
    """The SDK's environment pointed at the gateway (the SDK appends /v1/listen itself)."""
    http = f"http://127.0.0.1:{gateway.http_port}"
    ws = f"ws://127.0.0.1:{gateway.http_port}"
    return DeepgramClientEnvironment(base=http, production=ws, agent=ws, agent_rest=http)


async def python_sdk_stream(client: AsyncDeepgramClient) -> list[Any]:
    pcm = sample_pcm()
    received: list[Any] = []
    closed = asyncio.Event()
    async with client.listen.v1.connect(
        model="nova-3", encoding="linear16", sample_rate=16000, interim_results="true", punctuate="true"
    ) as socket:
        socket.on(EventType.MESSAGE, received.append)
        socket.on(EventType.CLOSE, lambda _: closed.set())
        listener = asyncio.create_task(socket.start_listening())
        for offset in range(0, len(pcm), 3200):
            await socket.send_media(pcm[offset : offset + 3200])
            await asyncio.sleep(0.025)
        await socket.send_close_stream()
        async with asyncio.timeout(90 * TIMING):
            await closed.wait()
            await listener
    return received


def check_python_messages(received: list[Any]) -> None:
    results = [m for m in received if isinstance(m, ListenV1Results)]
    text = " ".join(r.channel.alternatives[0].transcript for r in results if r.is_final)
    assert words_of(text) == SAMPLE_WORDS
    assert isinstance(received[-1], ListenV1Metadata)
    assert len({r.metadata.request_id for r in results} | {received[-1].request_id}) == 1


async def test_python_sdk_with_a_client_token() -> None:
    """AsyncDeepgramClient with the client token as its API key (Authorization: Token) streams
    the sample and parses every message the gateway sends."""
    async with engine_url() as upstream, web_gateway(upstream, auth_tokens=CLIENT_TOKEN) as gateway:
        client = AsyncDeepgramClient(api_key=CLIENT_TOKEN, environment=environment(gateway))
        received = await python_sdk_stream(client)
    check_python_messages(received)


async def test_python_sdk_with_a_granted_access_token() -> None:
    """A token from POST /v1/auth/grant works as the SDK's access_token (Authorization: Bearer)."""
    async with engine_url() as upstream, web_gateway(upstream, auth_tokens=CLIENT_TOKEN) as gateway:
        granted = await grant(gateway, CLIENT_TOKEN)
        assert granted["expires_in"] == 30
        client = AsyncDeepgramClient(access_token=granted["access_token"], environment=environment(gateway))
        received = await python_sdk_stream(client)
    check_python_messages(received)


async def node_sdk_stream(gateway: GatewayServer, secret: str, kind: str) -> dict[str, Any]:
    if shutil.which("node") is None or not (NODE_SDK / "node_modules" / "@deepgram" / "sdk").is_dir():
        pytest.fail(
            "run tools/install-browser.sh first: @deepgram/sdk is not installed in tests/web/node-sdk"
        )
    process = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_SDK / "stream.mjs"),
        f"http://127.0.0.1:{gateway.http_port}",
        str(SAMPLE),
        secret,
        cwd=NODE_SDK,
        stdout=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "DG_CREDENTIAL": kind},
    )
    try:
        async with asyncio.timeout(120 * TIMING):
            stdout, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("kind", ["api_key", "access_token"])
async def test_node_sdk(kind: str) -> None:
    """@deepgram/sdk v5 (listen.v1.connect, sendMedia, sendCloseStream) gets the sample's words,
    Metadata last and a clean close, with an API key or a granted access token."""
    async with engine_url() as upstream, web_gateway(upstream, auth_tokens=CLIENT_TOKEN) as gateway:
        secret = CLIENT_TOKEN if kind == "api_key" else (await grant(gateway, CLIENT_TOKEN))["access_token"]
        result = await node_sdk_stream(gateway, secret, kind)
    assert words_of(result["finals"]) == SAMPLE_WORDS, result
    assert result["last"] == "Metadata"
    assert result["closeCode"] == 1000
    assert len(result["requestIds"]) == 1
