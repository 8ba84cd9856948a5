"""The key, client tokens and URL credentials never reach the logs, whatever the upstream echoes
back, at every level and in both formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from transcribe.v1 import transcribe_pb2 as pb

from gateway import logs
from tests.integration.conftest import LINEAR16, TEST_KEY, expect_error, requests, running_gateway
from tests.support.standin import DeepgramStandIn, Plan, counter_audio

CLIENT_TOKEN = "client-token-5ecret-0123"
URL_USER, URL_PASSWORD, URL_TOKEN = "gw-user", "url-pa55word-0123", "url-t0ken-0123"
SECRETS = (TEST_KEY, CLIENT_TOKEN, URL_PASSWORD, URL_TOKEN)
ECHO = f"invalid credentials {TEST_KEY} {URL_PASSWORD} {URL_TOKEN} {CLIENT_TOKEN}"


def with_credentials(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{URL_USER}:{URL_PASSWORD}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, f"token={URL_TOKEN}", ""))


ECHOING_UPSTREAMS = {
    "400 body": [Plan(reject_status=400, reject_body=json.dumps({"err_msg": ECHO}))],
    "402 body": [Plan(reject_status=402, reject_body=json.dumps({"err_msg": ECHO}))],
    "503 body": [Plan(reject_status=503, reject_body=ECHO)] * 2,
    "401 body": [Plan(reject_status=401, reject_body=ECHO)],
    "close reason": [Plan(close_after_blocks=0, close_code=4000, close_reason=ECHO[:120])],
    "retryable close reason": [Plan(close_after_blocks=0, close_code=1011, close_reason=ECHO[:120])] * 2,
    "message": [Plan(on_open=[json.dumps({"type": ECHO}), json.dumps({"type": "Results", "channel": ECHO})])],
    "request id": [Plan(on_open=[json.dumps({"type": "Results", "metadata": {"request_id": ECHO}})])],
}


@pytest.fixture(params=["text", "json"])
def captured(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure("DEBUG", request.param)
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


@pytest.mark.parametrize("name", list(ECHOING_UPSTREAMS))
async def test_nothing_the_upstream_echoes_reaches_the_logs(name: str, captured: io.StringIO) -> None:
    """An upstream repeating the key (and the URL's credentials and a client token) back in a
    handshake body, a close reason or a message: the gateway's log lines show "[redacted]"."""
    async with DeepgramStandIn(ECHOING_UPSTREAMS[name]) as standin:
        async with running_gateway(
            with_credentials(standin.url), auth_tokens=CLIENT_TOKEN, retry_max_attempts=2
        ) as gw:
            metadata = (("authorization", f"Bearer {CLIENT_TOKEN}"),)
            call = gw.stub.StreamTranscribe(requests(LINEAR16, counter_audio(0, 2)), metadata=metadata)
            try:
                async for _ in call:
                    pass
            except grpc.aio.AioRpcError as exc:
                assert TEST_KEY not in (exc.details() or "")
    assert f"Token {TEST_KEY}" in standin.connections[0].headers.get_all("Authorization"), "no key sent"
    assert URL_TOKEN in dict(standin.connections[0].query).get("token", ""), "the URL's token was used"
    gateway_lines = [line for line in captured.getvalue().splitlines() if "tests.standin" not in line]
    text = "\n".join(gateway_lines)
    assert "[redacted]" in text, "the echo was not logged at all"
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked into the logs"


async def test_credentials_in_the_upstream_url_are_not_logged(captured: io.StringIO) -> None:
    """`--upstream-url wss://user:pass@host/...?token=...` shows as `[redacted]` in the start-up line."""
    async with DeepgramStandIn() as standin:
        async with running_gateway(with_credentials(standin.url)) as gw:
            error, _ = await expect_error(gw, [pb.StreamTranscribeRequest(audio=b"\0\0")])
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    text = "\n".join(line for line in captured.getvalue().splitlines() if "tests.standin" not in line)
    assert "relaying to ws://[redacted]@127.0.0.1" in text
    assert "token=[redacted]" in text
    for secret in SECRETS:
        assert secret not in text
