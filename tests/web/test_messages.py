"""Session responses -> Deepgram JSON, failures -> close codes and HTTP errors, client text
frames -> requests (gateway.web.messages)."""

from __future__ import annotations

import json
from http import HTTPStatus
from pathlib import Path
from typing import Any

import grpc
import pytest
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import (
    ClientError,
    GatewayError,
    Reason,
    RetriesExhaustedError,
    SessionError,
    UpstreamClosedError,
    UpstreamHandshakeError,
)
from gateway.protocol import deepgram
from gateway.web.messages import (
    CLOSE_STREAM,
    MAX_CLOSE_REASON_BYTES,
    StreamView,
    close_for,
    close_reason,
    http_error_for,
    metadata_message,
    parse_client_text,
    translate,
)
from tests.conftest import FIXTURES

HERE = Path(__file__).parent / "fixtures"


def _lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (HERE / name).read_text().splitlines() if line.strip()]


def _view(request_id: str, **overrides: Any) -> StreamView:
    return StreamView(request_id=request_id, created="2026-08-25T21:11:31.685Z", channels=1, **overrides)


@pytest.mark.parametrize("wire", _lines("results.jsonl") + _lines("events.jsonl"))
def test_messages_come_back_key_for_key(wire: dict[str, Any]) -> None:
    """Deepgram's message -> the gateway's proto -> Deepgram's message: the same object, in
    Deepgram's key order."""
    parsed = deepgram.parse_message(json.dumps(wire))
    kind = {pb.Result: "result", pb.SpeechStarted: "speech_started", pb.UtteranceEnd: "utterance_end"}
    response = pb.StreamTranscribeResponse(**{kind[type(parsed)]: parsed})  # type: ignore[arg-type]
    request_id = wire.get("metadata", {}).get("request_id", "r")
    out = translate(response, _view(request_id))
    assert out == wire
    assert list(out) == list(wire)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="the shared Deepgram fixtures are not here")
@pytest.mark.parametrize(
    "name", sorted(p.name for p in FIXTURES.glob("*response.json")) if FIXTURES.is_dir() else []
)
def test_recorded_deepgram_results_come_back_unchanged(name: str) -> None:
    """Real final Results recorded from Deepgram (SDK fixtures): the same keys and values."""
    wire = json.loads((FIXTURES / name).read_text())
    result = deepgram.parse_message(json.dumps(wire))
    assert isinstance(result, pb.Result)
    out = translate(pb.StreamTranscribeResponse(result=result), _view(wire["metadata"]["request_id"]))
    assert out == wire


@pytest.mark.parametrize("wire", _lines("metadata.jsonl"))
def test_closing_metadata(wire: dict[str, Any]) -> None:
    """The session summary becomes Deepgram's one closing Metadata."""
    upstream = deepgram.parse_message(json.dumps(wire))
    assert isinstance(upstream, pb.UpstreamMetadata)
    summary = pb.SessionSummary(audio_received_seconds=wire["duration"], upstream_metadata=[upstream])
    out = metadata_message(summary, StreamView(wire["request_id"], wire["created"], wire["channels"]))
    assert out == wire
    assert list(out) == list(wire)


def test_metadata_after_reconnects_names_each_model_once_and_the_stream_id() -> None:
    """Two upstream connections: one Metadata, the gateway's request id, each model once."""
    info = {"m1": pb.ModelInfo(name="n", version="v", arch="a")}
    summary = pb.SessionSummary(
        audio_received_seconds=12.5,
        upstream_metadata=[
            pb.UpstreamMetadata(request_id="up-1", models=["m1"], model_info=info),
            pb.UpstreamMetadata(request_id="up-2", models=["m1"], model_info=info),
        ],
    )
    out = translate(pb.StreamTranscribeResponse(summary=summary), _view("stream-id"))
    assert out is not None
    assert (out["request_id"], out["duration"], out["models"]) == ("stream-id", 12.5, ["m1"])


EVENTS = [
    pb.StreamTranscribeResponse(session_started=pb.SessionStarted(session_id="s", upstream_request_id="u")),
    pb.StreamTranscribeResponse(
        upstream_event=pb.UpstreamEvent(
            reconnecting=pb.Reconnecting(attempt=1, reason="close 1006", committed_seconds=4.2)
        )
    ),
    pb.StreamTranscribeResponse(
        upstream_event=pb.UpstreamEvent(
            reconnected=pb.Reconnected(upstream_request_id="u2", replayed_audio_seconds=1.5, attempts=2)
        )
    ),
    pb.StreamTranscribeResponse(
        upstream_event=pb.UpstreamEvent(going_away=pb.GoingAway(reason="drain", grace_seconds=30))
    ),
]


@pytest.mark.parametrize(
    ("response", "expected"),
    list(
        zip(
            EVENTS,
            [
                {
                    "type": "GatewayEvent",
                    "event": "session_started",
                    "session_id": "s",
                    "upstream_request_id": "u",
                },
                {
                    "type": "GatewayEvent",
                    "event": "reconnecting",
                    "attempt": 1,
                    "reason": "close 1006",
                    "committed_seconds": 4.2,
                },
                {
                    "type": "GatewayEvent",
                    "event": "reconnected",
                    "upstream_request_id": "u2",
                    "replayed_audio_seconds": 1.5,
                    "attempts": 2,
                },
                {"type": "GatewayEvent", "event": "going_away", "reason": "drain", "grace_seconds": 30.0},
            ],
            strict=True,
        )
    ),
)
def test_gateway_events_for_clients_that_asked(response: pb.StreamTranscribeResponse, expected: Any) -> None:
    """With gateway_events=true each session event becomes a GatewayEvent; without, nothing."""
    assert translate(response, _view("r", gateway_events=True)) == expected
    assert translate(response, _view("r")) is None


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UpstreamClosedError(1008, "DATA-0000", "r"), 1008),
        (ClientError("the first request must carry config"), 1008),
        (SessionError(grpc.StatusCode.UNAVAILABLE, Reason.DRAINING, "shutting down"), 1012),
        (SessionError(grpc.StatusCode.RESOURCE_EXHAUSTED, Reason.BACKPRESSURE, "too fast"), 1008),
        (SessionError(grpc.StatusCode.OUT_OF_RANGE, Reason.SESSION_TOO_LONG, "too long"), 1011),
        (SessionError(grpc.StatusCode.DEADLINE_EXCEEDED, Reason.CLIENT_IDLE, "idle"), 1011),
        (RetriesExhaustedError(UpstreamClosedError(1011, "NET-0001", "r"), 6), 1011),
        (UpstreamHandshakeError(401, "{}", "r"), 1011),
    ],
)
def test_close_codes(error: GatewayError, code: int) -> None:
    """After the upgrade: 1008 for what the client can fix, 1012 for a drain, 1011 otherwise."""
    assert close_for(error)[0] == code


@pytest.mark.parametrize(
    ("error", "status", "err_code"),
    [
        (
            UpstreamHandshakeError(400, '{"err_msg":"No such model/language/tier combination found."}', "r"),
            HTTPStatus.BAD_REQUEST,
            "Bad Request",
        ),
        (UpstreamHandshakeError(401, "{}", "r"), HTTPStatus.BAD_GATEWAY, "BAD_GATEWAY"),
        (UpstreamHandshakeError(402, "{}", "r"), HTTPStatus.TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS"),
        (
            RetriesExhaustedError(UpstreamHandshakeError(503, "", "r"), 6),
            HTTPStatus.SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
        ),
    ],
)
def test_handshake_errors(error: GatewayError, status: HTTPStatus, err_code: str) -> None:
    """Before the upgrade: the HTTP status a Deepgram client expects, with Deepgram's body."""
    answer = http_error_for(error)
    assert (answer.status, answer.err_code) == (status, err_code)
    body = json.loads(answer.body("rid"))
    assert set(body) == {"err_code", "err_msg", "request_id"}
    if status == HTTPStatus.BAD_REQUEST:
        assert "No such model" in body["err_msg"]


@pytest.mark.parametrize("text", ["short", "é" * 100, "x" * 500])
def test_close_reason_fits_a_close_frame(text: str) -> None:
    """Close reasons are cut to 123 bytes of UTF-8, on a character boundary."""
    reason = close_reason(text)
    assert len(reason.encode()) <= MAX_CLOSE_REASON_BYTES
    assert reason == text or reason.endswith("...")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"KeepAlive"}', pb.Control(keep_alive=pb.KeepAlive())),
        ('{ "type" : "Finalize" }', pb.Control(finalize=pb.Finalize())),
        ('{"type":"Finalize","channel":1}', pb.Control(finalize=pb.Finalize(channel=1))),
        ('{"type":"Finalize","channel":-1}', pb.Control(finalize=pb.Finalize())),
        ('{"type":"Finalize","channel":true}', pb.Control(finalize=pb.Finalize())),
        ('{"type": "CloseStream"}', CLOSE_STREAM),
        ('{"type":"Configure","keyterms":["x"]}', None),
        ("not json", None),
        ("[1, 2]", None),
    ],
)
def test_client_text_frames(text: str, expected: object) -> None:
    """KeepAlive, Finalize and CloseStream in any JSON spelling; anything else is skipped."""
    assert parse_client_text(text) == expected
