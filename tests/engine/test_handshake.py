"""Handshake answers over real sockets: auth, option errors, admission, request ids."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import TIMING
from tests.engine.conftest import running_engine
from transcribe_engine.config import EngineConfig

pytestmark = pytest.mark.engine

KEY = "engine-test-key-5f2c"


async def refused(url: str, **kwargs: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, **kwargs):
            pass
    response = caught.value.response
    return response.status_code, json.loads(response.body), dict(response.headers)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Token wrong"}, {"Authorization": f"Basic {KEY}"}])
async def test_wrong_or_missing_key_is_401(headers: dict[str, str]) -> None:
    """A configured key must be presented; otherwise 401 with Deepgram's body and headers."""
    async with running_engine(api_key=KEY) as engine:
        status, body, response_headers = await refused(engine.url, additional_headers=headers)
    assert status == 401
    assert body["err_code"] == "INVALID_AUTH"
    assert response_headers["dg-request-id"] == body["request_id"]
    assert response_headers["dg-error"] == body["err_msg"]
    assert KEY not in json.dumps(body)


@pytest.mark.parametrize(
    ("headers", "subprotocols"),
    [
        ({"Authorization": f"Token {KEY}"}, None),
        ({"Authorization": f"token {KEY}"}, None),
        ({"Authorization": f"Bearer {KEY}"}, None),
        ({}, ["token", KEY]),
    ],
)
async def test_key_accepted_in_every_form(headers: dict[str, str], subprotocols: list[str] | None) -> None:
    """Token/Bearer headers and the browser subprotocol pair open the socket; 'token' is echoed."""
    async with (
        running_engine(api_key=KEY) as engine,
        connect(engine.url, additional_headers=headers, subprotocols=subprotocols) as ws,  # type: ignore[arg-type]
    ):
        assert ws.response is not None
        assert ws.response.headers["dg-request-id"]
        if subprotocols:
            assert ws.subprotocol == "token"


def test_key_is_masked_in_config_repr() -> None:
    """The key never shows in the configuration's repr."""
    assert KEY not in repr(EngineConfig(api_key=SecretStr(KEY)))
    assert "***" in repr(EngineConfig(api_key=SecretStr(KEY)))


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("encoding=linear17&sample_rate=16000", "encoding"),
        ("encoding=linear16", "sample_rate"),
        ("encoding=linear16&sample_rate=fast", "sample_rate"),
        ("endpointing=maybe", "endpointing"),
        ("language=fr", "model/language"),
        ("model=no-such-model", "model/language"),
        ("encoding=linear16&sample_rate=1", "sample_rate"),
        ("encoding=linear16&sample_rate=1000000000", "sample_rate"),
        ("encoding=linear16&sample_rate=16000&channels=1000", "channels"),
    ],
)
async def test_invalid_options_are_400(query: str, fragment: str) -> None:
    """Invalid options are refused at the handshake with a Deepgram-style 400."""
    async with running_engine() as engine:
        status, body, headers = await refused(f"{engine.url}?{query}")
    assert status == 400
    assert body["err_code"] == "Bad Request"
    assert fragment in body["err_msg"]
    assert headers["dg-request-id"] == body["request_id"]
    assert headers["dg-error"] == body["err_msg"]


async def test_streams_beyond_capacity_get_429() -> None:
    """Past max_streams the handshake is refused with 429 until a stream ends."""
    async with running_engine(max_streams=1) as engine:
        async with connect(engine.url + "?encoding=linear16&sample_rate=16000") as first:
            status, body, headers = await refused(engine.url)
            assert status == 429
            assert body["err_code"] == "TOO_MANY_REQUESTS"
            assert headers["dg-request-id"] == body["request_id"]
            await first.send('{"type": "CloseStream"}')
            await first.wait_closed()
        async with asyncio.timeout(10 * TIMING):
            await engine.wait_idle()
        async with connect(engine.url):
            assert engine.active_streams == 1


async def test_health_path_answers_200() -> None:
    """/healthz is the supervisor's probe; it needs no key and opens no stream."""
    async with running_engine(api_key=KEY) as engine:
        host, port = engine.url.removeprefix("ws://").split("/")[0].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: e\r\n\r\n")
        status = await reader.readline()
        writer.close()
        await writer.wait_closed()
        assert engine.active_streams == 0
    assert status.split()[1] == b"200"


async def test_unknown_path_is_404() -> None:
    """Only /v1/listen is served."""
    async with running_engine() as engine:
        status, body, headers = await refused(engine.url.replace("/v1/listen", "/v2/listen"))
    assert status == 404
    assert headers["dg-request-id"] == body["request_id"]
