"""Session responses -> Deepgram's JSON messages; session failures -> close codes and HTTP errors.

Deepgram's SDKs parse ``Results``, ``Metadata``, ``SpeechStarted`` and ``UtteranceEnd``, keyed
as Deepgram sends them, in Deepgram's key order. The gateway's times are already
on one time base (seconds from the start of the client's audio), which is what a Deepgram
client expects from a single connection. Every message carries one ``request_id`` for the whole
stream, the gateway's session id, however many upstream connections served it.

``GatewayEvent`` messages (session start, reconnects, drain) exist only when the client opts in
with ``gateway_events=true``, so that Deepgram's SDKs never meet a type they do not know.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import grpc
from google.protobuf import json_format
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import GatewayError, Reason, SessionError
from gateway.protocol.outcome import error_status

Message = dict[str, Any]

# RFC 6455: a close frame's reason is at most 123 bytes of UTF-8.
MAX_CLOSE_REASON_BYTES: Final = 123


@dataclass(frozen=True, slots=True)
class StreamView:
    """What the translation needs to know about the stream besides each response."""

    request_id: str
    created: str  # RFC 3339 with milliseconds and Z, when the stream opened
    channels: int
    gateway_events: bool = False


def translate(response: pb.StreamTranscribeResponse, view: StreamView) -> Message | None:
    """The Deepgram message for one session response, or None when a Deepgram client gets none."""
    kind = response.WhichOneof("response")
    if kind == "result":
        return results_message(response.result, view.request_id)
    if kind == "speech_started":
        started = response.speech_started
        return {
            "type": "SpeechStarted",
            "channel": [started.channel_index, started.channel_count or 1],
            "timestamp": started.timestamp_seconds,
        }
    if kind == "utterance_end":
        end = response.utterance_end
        return {
            "type": "UtteranceEnd",
            "channel": [end.channel_index, end.channel_count or 1],
            "last_word_end": end.last_word_end_seconds,
        }
    if kind == "summary":
        return metadata_message(response.summary, view)
    if not view.gateway_events:
        return None
    if kind == "session_started":
        started_msg = response.session_started
        return {
            "type": "GatewayEvent",
            "event": "session_started",
            "session_id": started_msg.session_id,
            "upstream_request_id": started_msg.upstream_request_id,
        }
    if kind == "upstream_event":
        return gateway_event(response.upstream_event)
    return None


def results_message(result: pb.Result, request_id: str) -> Message:
    channel: Message = {"alternatives": [_alternative(a) for a in result.alternatives]}
    if result.search:
        channel["search"] = [
            {
                "query": s.query,
                "hits": [
                    {
                        "confidence": h.confidence,
                        "start": h.start_seconds,
                        "end": h.end_seconds,
                        "snippet": h.snippet,
                    }
                    for h in s.hits
                ],
            }
            for s in result.search
        ]
    info = result.metadata.model_info
    metadata: Message = {
        "request_id": request_id,
        "model_info": {"name": info.name, "version": info.version, "arch": info.arch},
        "model_uuid": result.metadata.model_uuid,
    }
    if result.metadata.extra:
        metadata["extra"] = dict(sorted(result.metadata.extra.items()))
    message: Message = {
        "type": "Results",
        "channel_index": [result.channel_index, result.channel_count or 1],
        "duration": result.duration_seconds,
        "start": result.start_seconds,
        "is_final": result.is_final,
        "speech_final": result.speech_final,
        "channel": channel,
        "metadata": metadata,
        "from_finalize": result.from_finalize,
    }
    if result.entities:
        message["entities"] = [
            {
                "label": e.label,
                "value": e.value,
                "raw_value": e.raw_value,
                "confidence": e.confidence,
                "start_word": e.start_word,
                "end_word": e.end_word,
            }
            for e in result.entities
        ]
    return message


def _alternative(alternative: pb.Alternative) -> Message:
    out: Message = {
        "transcript": alternative.transcript,
        "confidence": alternative.confidence,
        "words": [_word(w) for w in alternative.words],
    }
    if alternative.languages:
        out["languages"] = list(alternative.languages)
    return out


def _word(word: pb.Word) -> Message:
    out: Message = {
        "word": word.word,
        "start": word.start_seconds,
        "end": word.end_seconds,
        "confidence": word.confidence,
    }
    if word.punctuated_word:
        out["punctuated_word"] = word.punctuated_word
    if word.HasField("speaker"):
        out["speaker"] = word.speaker
    if word.language:
        out["language"] = word.language
    return out


def metadata_message(summary: pb.SessionSummary, view: StreamView) -> Message:
    """The one closing ``Metadata``: the whole stream's audio, the models of every connection."""
    models: list[str] = []
    model_info: dict[str, Message] = {}
    extra: Mapping[str, str] = {}
    for upstream in summary.upstream_metadata:
        for uuid in upstream.models:
            if uuid not in model_info:
                models.append(uuid)
                info = upstream.model_info.get(uuid, pb.ModelInfo())
                model_info[uuid] = {"name": info.name, "version": info.version, "arch": info.arch}
        extra = upstream.extra or extra
    message: Message = {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": view.request_id,
        "sha256": "incomplete",
        "created": view.created,
        "duration": summary.audio_received_seconds,
        "channels": view.channels,
    }
    if models:
        message["models"] = models
        message["model_info"] = model_info
    if extra:
        message["extra"] = dict(sorted(extra.items()))
    return message


def gateway_event(event: pb.UpstreamEvent) -> Message | None:
    """A gRPC upstream event as the page's ``GatewayEvent``: the event's fields by their proto
    names, every field present (a page reads ``attempt`` 0 as well as 3)."""
    kind = event.WhichOneof("event")
    if kind is None:
        return None
    fields = json_format.MessageToDict(
        getattr(event, kind), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return {"type": "GatewayEvent", "event": kind, **fields}


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


# --- failures ----------------------------------------------------------------------------------

# After the upgrade: Deepgram closes 1008 for audio it cannot decode and 1011 for the rest; a
# drain is 1012 (service restart), which tells a reconnecting client (JS SDK v5) to come back.
_CLOSE_CODES: Final[Mapping[grpc.StatusCode, int]] = {
    grpc.StatusCode.INVALID_ARGUMENT: 1008,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 1008,
    grpc.StatusCode.UNAVAILABLE: 1011,
}
_HTTP_STATUSES: Final[Mapping[grpc.StatusCode, HTTPStatus]] = {
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    # The upstream refused the gateway's own key: the gateway, not the client, is misconfigured.
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_GATEWAY,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}
# Deepgram's err_code for each status (its handshake error bodies); others use the phrase.
_ERR_CODES: Final[Mapping[int, str]] = {
    400: "Bad Request",
    401: "INVALID_AUTH",
    402: "ASR_PAYMENT_REQUIRED",
    403: "INSUFFICIENT_PERMISSIONS",
    404: "NOT_FOUND",
    429: "TOO_MANY_REQUESTS",
}


def close_for(error: GatewayError) -> tuple[int, str]:
    """The close code and reason for a stream that failed after the upgrade."""
    status = error_status(error)
    code, message = status.code, status.message
    if isinstance(error, SessionError) and error.reason == Reason.DRAINING:
        close = 1012
    else:
        close = _CLOSE_CODES.get(code, 1011)
    return close, close_reason(message)


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame, on a character boundary."""
    data = text.encode()
    if len(data) <= MAX_CLOSE_REASON_BYTES:
        return text
    return data[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


@dataclass(frozen=True, slots=True)
class HttpError:
    """A refused handshake or HTTP request: status and Deepgram's error body."""

    status: HTTPStatus
    message: str

    @property
    def err_code(self) -> str:
        return _ERR_CODES.get(self.status.value, self.status.phrase.upper().replace(" ", "_"))

    def body(self, request_id: str) -> str:
        return encode({"err_code": self.err_code, "err_msg": self.message, "request_id": request_id})


def http_error_for(error: GatewayError) -> HttpError:
    """The HTTP answer for a stream that failed before its upgrade was answered."""
    status = error_status(error)
    code, message = status.code, status.message
    return HttpError(_HTTP_STATUSES.get(code, HTTPStatus.INTERNAL_SERVER_ERROR), message)


# --- client -> server --------------------------------------------------------------------------


class CloseStream:
    """The client's ``CloseStream``: no more audio (the gRPC half-close)."""


CLOSE_STREAM: Final = CloseStream()


def parse_client_text(text: str) -> pb.Control | CloseStream | None:
    """A client's text frame: a control, the end of the audio, or None for anything else.

    Unknown types (``Configure``, which the gateway cannot relay yet) and malformed frames are
    skipped: Deepgram documents no answer to them, and a stream should not die of one.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "KeepAlive":
        return pb.Control(keep_alive=pb.KeepAlive())
    if kind == "CloseStream":
        return CLOSE_STREAM
    if kind == "Finalize":
        channel = data.get("channel")
        if isinstance(channel, int) and not isinstance(channel, bool) and 0 <= channel < 2**32:
            return pb.Control(finalize=pb.Finalize(channel=channel))
        return pb.Control(finalize=pb.Finalize())
    return None
