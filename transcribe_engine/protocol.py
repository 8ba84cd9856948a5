"""Deepgram live ``/v1/listen`` protocol, server side, as plain data in and out.

Nothing here does I/O: the server feeds it a query string, headers and text frames, and takes
back typed options, decisions and JSON-ready dicts. Field names and key order follow Deepgram's
wire captures (see ``shared/deepgram-live-protocol.md`` sections 1-4).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qsl

LISTEN_PATH: Final = "/v1/listen"
HEALTH_PATH: Final = "/healthz"  # not Deepgram's: for a supervisor's liveness probe


class CloseCode(IntEnum):
    NORMAL = 1000
    POLICY_VIOLATION = 1008  # DATA-0000
    INTERNAL_ERROR = 1011  # NET-0000 / NET-0001


NET0001_REASON: Final = (
    "Deepgram did not receive audio data or a text message within the timeout window. "
    "See https://dpgr.am/net0001"
)
DATA0000_REASON: Final = (
    "DATA-0000: the audio data could not be decoded (not audio, or an unsupported format)."
)


class Encoding(StrEnum):
    LINEAR16 = "linear16"
    LINEAR32 = "linear32"
    MULAW = "mulaw"
    ALAW = "alaw"
    FLAC = "flac"
    OPUS = "opus"
    OGG_OPUS = "ogg-opus"
    AMR_NB = "amr-nb"
    AMR_WB = "amr-wb"
    SPEEX = "speex"
    G729 = "g729"


# Headerless sample formats the engine converts itself.
RAW_ENCODINGS: Final = frozenset({Encoding.LINEAR16, Encoding.LINEAR32, Encoding.MULAW, Encoding.ALAW})
# Self-describing streams: decoded like a container even though the client named them.
CONTAINER_ENCODINGS: Final = frozenset({Encoding.FLAC, Encoding.OPUS, Encoding.OGG_OPUS})
# Valid for Deepgram, refused here with a 400 rather than failing silently mid-stream.
UNSUPPORTED_ENCODINGS: Final = frozenset({Encoding.AMR_NB, Encoding.AMR_WB, Encoding.SPEEX, Encoding.G729})

# Options Deepgram accepts that change nothing here; listed in docs/engine.md.
IGNORED_OPTIONS: Final = frozenset(
    {
        "model",
        "version",
        "tier",
        "diarize_version",
        "redact",
        "keyterm",
        "keywords",
        "search",
        "replace",
        "tag",
        "dictation",
        "profanity_filter",
        "filler_words",
        "no_delay",
        "detect_entities",
        "mip_opt_out",
        "callback",
        "callback_method",
        "alternatives",
    }
)

MAX_CHANNELS: Final = 20
# Telephony's 8 kHz up to studio 192 kHz. Beyond these a declared rate is a mistake or an attack:
# at sample_rate=1 one 64 kB message would resample to half a gigasample.
MIN_SAMPLE_RATE: Final = 8_000
MAX_SAMPLE_RATE: Final = 192_000

# Deepgram's model names (and its hosted Whisper sizes) all run the one local model; anything
# else is refused as Deepgram refuses a model it does not have.
_MODEL_FAMILIES: Final = frozenset({"nova-3", "nova-2", "nova", "enhanced", "base"})
_MODEL_DOMAINS: Final = frozenset(
    {
        "general",
        "meeting",
        "phonecall",
        "finance",
        "conversationalai",
        "voicemail",
        "video",
        "medical",
        "drivethru",
        "automotive",
        "atc",
    }
)
_OTHER_MODELS: Final = frozenset(
    {"whisper", "whisper-tiny", "whisper-base", "whisper-small", "whisper-medium", "whisper-large"}
)
NO_SUCH_MODEL: Final = "No such model/language/tier combination found."


def is_known_model(name: str) -> bool:
    """Whether ``name`` is one of Deepgram's model names (``nova-3``, ``nova-2-phonecall``, ...)."""
    name = name.strip().lower()
    if name in _MODEL_FAMILIES or name in _MODEL_DOMAINS or name in _OTHER_MODELS:
        return True
    family, _, domain = name.rpartition("-")
    return family in _MODEL_FAMILIES and domain in _MODEL_DOMAINS


_BOOLEAN_OPTIONS: Final = (
    "numerals",
    "multichannel",
    "interim_results",
    "vad_events",
    "punctuate",
    "smart_format",
    "diarize",
)
_TRUE: Final = "true"
_FALSE: Final = "false"


class OptionsError(ValueError):
    """A query option Deepgram would reject with HTTP 400."""


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """The options of one ``/v1/listen`` stream, typed and validated."""

    model: str | None = None
    language: str = "en"
    encoding: Encoding | None = None  # None: containerised audio, format detected
    sample_rate: int | None = None
    channels: int = 1
    multichannel: bool = False
    interim_results: bool = False
    endpointing_ms: int | None = 10  # None: endpointing disabled
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False
    smart_format: bool = False
    numerals: bool = False
    # No diarization model here: every word is labelled speaker 0, as Deepgram labels a lone voice.
    diarize: bool = False
    extra: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()  # options received that the engine does not act on

    @property
    def is_raw(self) -> bool:
        return self.encoding in RAW_ENCODINGS

    @property
    def output_channels(self) -> int:
        """How many channels results are reported for (``channel_index[1]``)."""
        return self.channels if self.multichannel and self.is_raw else 1

    @property
    def formatted(self) -> bool:
        return self.punctuate or self.smart_format

    @property
    def digits(self) -> bool:
        """Numbers as digits (Deepgram's numerals/smart_format); otherwise spelled out."""
        return self.numerals or self.smart_format


def parse_options(query: str) -> ListenOptions:
    """Parse a raw query string (without ``?``) the way Deepgram reads it.

    Repeated keys, ``+`` and ``%20`` are handled by the standard parser; unknown keys are
    tolerated; the last value of a repeated scalar key wins.
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)

    def last(key: str) -> str | None:
        found = values.get(key)
        return found[-1] if found else None

    booleans = {name: _parse_bool(name, last(name)) for name in _BOOLEAN_OPTIONS}

    encoding: Encoding | None = None
    raw_encoding = last("encoding")
    if raw_encoding is not None:
        try:
            encoding = Encoding(raw_encoding.strip().lower())
        except ValueError:
            raise OptionsError(f"Invalid encoding: {raw_encoding!r}.") from None
        if encoding in UNSUPPORTED_ENCODINGS:
            raise OptionsError(f"Encoding {encoding.value!r} is not supported by this engine.")

    sample_rate = _parse_int("sample_rate", last("sample_rate"), minimum=1)
    if sample_rate is not None and not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise OptionsError(
            f"Invalid sample_rate: {sample_rate}; must be {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz."
        )
    if encoding in RAW_ENCODINGS and sample_rate is None:
        raise OptionsError(f"sample_rate is required with encoding={encoding}.")

    channels = _parse_int("channels", last("channels"), minimum=1)
    if channels is not None and channels > MAX_CHANNELS:
        raise OptionsError(f"Invalid channels: at most {MAX_CHANNELS} are supported.")

    endpointing_ms: int | None = 10
    raw_endpointing = last("endpointing")
    if raw_endpointing is not None:
        lowered = raw_endpointing.strip().lower()
        if lowered == _FALSE:
            endpointing_ms = None
        elif lowered == _TRUE:
            endpointing_ms = 10
        else:
            endpointing_ms = _parse_int("endpointing", raw_endpointing, minimum=0)

    utterance_end_ms = _parse_int("utterance_end_ms", last("utterance_end_ms"), minimum=1)

    extra: list[tuple[str, str]] = []
    for item in values.get("extra", []):
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise OptionsError(f"Invalid extra: {item!r}; expected key:value.")
        extra.append((key, value))

    model = last("model")
    if model is not None and not is_known_model(model):
        raise OptionsError(NO_SUCH_MODEL)
    if last("diarize_model") is not None:
        booleans["diarize"] = True  # selecting a diarization model turns diarization on

    language = last("language") or "en"
    ignored = tuple(sorted(k for k in values if k in IGNORED_OPTIONS and k != "model"))
    return ListenOptions(
        model=model,
        language=language,
        encoding=encoding,
        sample_rate=sample_rate,
        channels=channels or 1,
        endpointing_ms=endpointing_ms,
        utterance_end_ms=utterance_end_ms,
        extra=tuple(extra),
        ignored=ignored,
        **booleans,
    )


def _parse_bool(name: str, raw: str | None) -> bool:
    if raw is None:
        return False
    lowered = raw.strip().lower()
    if lowered == _TRUE:
        return True
    if lowered == _FALSE:
        return False
    raise OptionsError(f"Invalid {name}: {raw!r}; expected true or false.")


def _parse_int(name: str, raw: str | None, *, minimum: int) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise OptionsError(f"Invalid {name}: {raw!r}; expected an integer.") from None
    if value < minimum:
        raise OptionsError(f"Invalid {name}: {value}; must be at least {minimum}.")
    return value


# ---- handshake ---------------------------------------------------------------------------------


class AuthScheme(StrEnum):
    TOKEN = "token"
    BEARER = "bearer"


@dataclass(frozen=True, slots=True)
class Credentials:
    scheme: AuthScheme
    secret: str = field(repr=False)
    via_subprotocol: bool


def parse_credentials(authorization: str | None, subprotocols: Sequence[str]) -> Credentials | None:
    """Find the client's key in ``Authorization`` or in the ``token, <key>`` subprotocol pair."""
    if authorization:
        scheme, _, secret = authorization.strip().partition(" ")
        try:
            parsed = AuthScheme(scheme.lower())
        except ValueError:
            parsed = None
        if parsed is not None and secret.strip():
            return Credentials(parsed, secret.strip(), via_subprotocol=False)
    if len(subprotocols) >= 2:
        try:
            parsed = AuthScheme(subprotocols[0].strip().lower())
        except ValueError:
            return None
        return Credentials(parsed, subprotocols[1].strip(), via_subprotocol=True)
    return None


def select_subprotocol(offered: Sequence[str]) -> str | None:
    """The scheme to echo: browsers fail the socket unless one offered protocol comes back."""
    for item in offered:
        if item.strip().lower() in (AuthScheme.TOKEN, AuthScheme.BEARER):
            return item.strip()
    return None


def is_authorized(expected_key: str | None, credentials: Credentials | None) -> bool:
    if expected_key is None:
        return True
    return credentials is not None and _constant_time_equal(credentials.secret, expected_key)


def _constant_time_equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class HandshakeError:
    """A refused upgrade: HTTP status, ``dg-error`` header and JSON body."""

    status: HTTPStatus
    err_code: str
    err_msg: str

    def body(self, request_id: str) -> str:
        return json.dumps({"err_code": self.err_code, "err_msg": self.err_msg, "request_id": request_id})


def bad_request(message: str) -> HandshakeError:
    return HandshakeError(HTTPStatus.BAD_REQUEST, "Bad Request", message)


INVALID_AUTH: Final = HandshakeError(HTTPStatus.UNAUTHORIZED, "INVALID_AUTH", "Invalid credentials.")
NOT_FOUND: Final = HandshakeError(HTTPStatus.NOT_FOUND, "Not Found", "Unknown path.")


def too_many_requests(limit: int) -> HandshakeError:
    return HandshakeError(
        HTTPStatus.TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        f"Too many requests: this engine serves at most {limit} concurrent streams in real "
        "time. Please try again later.",
    )


def new_request_id() -> str:
    return str(uuid.uuid4())


# ---- client text messages ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


@dataclass(frozen=True, slots=True)
class Finalize:
    channel: int | None = None


@dataclass(frozen=True, slots=True)
class CloseStream:
    pass


@dataclass(frozen=True, slots=True)
class Configure:
    has_keyterms: bool


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    text: str


ControlMessage = KeepAlive | Finalize | CloseStream | Configure | UnknownMessage


def parse_control(text: str) -> ControlMessage:
    """Read a client text frame; anything unrecognised is reported, never raised."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return UnknownMessage(text)
    if not isinstance(data, dict):
        return UnknownMessage(text)
    kind = data.get("type")
    if kind == "KeepAlive":
        return KeepAlive()
    if kind == "CloseStream":
        return CloseStream()
    if kind == "Finalize":
        channel = data.get("channel")
        if isinstance(channel, int) and not isinstance(channel, bool) and channel >= 0:
            return Finalize(channel)
        return Finalize()
    if kind == "Configure":
        return Configure(has_keyterms=bool(data.get("keyterms")))
    return UnknownMessage(text)


# ---- server messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    version: str
    arch: str

    @property
    def uuid(self) -> str:
        # Stable per model so clients can key on it, as they do with Deepgram's.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"gateway-engine:{self.arch}:{self.name}"))

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "arch": self.arch}


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word, times in seconds from the start of the stream."""

    text: str  # as the recogniser wrote it, possibly punctuated and capitalised
    start: float
    end: float
    confidence: float


def _seconds(value: float) -> float:
    return round(value, 4)


def _confidence(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return round(min(1.0, max(0.0, value)), 6)


# Includes typographic quotes, which Whisper sometimes writes.
_STRIP_CHARS: Final = "\"'.,!?;:()[]{}\u201c\u201d\u2018\u2019\u00bf\u00a1\u2026-"


def has_letters(text: str) -> bool:
    """False for tokens that are punctuation only, which Deepgram never reports as words."""
    return any(ch.isalnum() for ch in text)


def plain_word(text: str) -> str:
    """Deepgram's ``word``: lowercase, no surrounding punctuation."""
    stripped = text.strip().strip(_STRIP_CHARS)
    return (stripped or text.strip()).lower()


@dataclass(frozen=True, slots=True)
class ResultWindow:
    channel: int
    channels: int
    start: float
    end: float
    is_final: bool
    speech_final: bool
    from_finalize: bool
    words: tuple[Word, ...]


def results_message(
    window: ResultWindow,
    *,
    options: ListenOptions,
    request_id: str,
    model: ModelInfo,
) -> dict[str, Any]:
    words: list[dict[str, Any]] = []
    for word in window.words:
        item: dict[str, Any] = {
            "word": plain_word(word.text),
            "start": _seconds(word.start),
            "end": _seconds(word.end),
            "confidence": _confidence(word.confidence),
        }
        if options.formatted:
            item["punctuated_word"] = word.text.strip()
        if options.diarize:
            item["speaker"] = 0
        words.append(item)
    if options.formatted and words:
        # A result opens with a capital, as Deepgram's do: the decoder's own casing of the first
        # word depends on the context it was given, which differs between interim and final.
        first = words[0]["punctuated_word"]
        words[0]["punctuated_word"] = first[:1].upper() + first[1:]
    if options.formatted:
        transcript = " ".join(w["punctuated_word"] for w in words)
    else:
        transcript = " ".join(w["word"] for w in words)
    confidence = min((w["confidence"] for w in words), default=0.0) if words else 0.0
    if words:
        # Deepgram's alternative confidence tracks the words; the mean is steadier than the min.
        confidence = _confidence(sum(w["confidence"] for w in words) / len(words))
    return {
        "type": "Results",
        "channel_index": [window.channel, window.channels],
        "duration": _seconds(max(0.0, window.end - window.start)),
        "start": _seconds(window.start),
        "is_final": window.is_final,
        "speech_final": window.speech_final,
        "channel": {"alternatives": [{"transcript": transcript, "confidence": confidence, "words": words}]},
        "metadata": _result_metadata(options, request_id, model),
        "from_finalize": window.from_finalize,
    }


def _result_metadata(options: ListenOptions, request_id: str, model: ModelInfo) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "request_id": request_id,
        "model_info": model.as_dict(),
        "model_uuid": model.uuid,
    }
    if options.extra:
        metadata["extra"] = dict(options.extra)
    return metadata


def metadata_message(
    *,
    options: ListenOptions,
    request_id: str,
    created: datetime,
    duration_s: float,
    model: ModelInfo,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": "incomplete",
        "created": format_created(created),
        "duration": _seconds(duration_s),
        "channels": options.output_channels,
    }
    # Deepgram lists the models only once audio has been processed.
    if duration_s > 0:
        message["models"] = [model.uuid]
        message["model_info"] = {model.uuid: model.as_dict()}
    if options.extra:
        message["extra"] = dict(options.extra)
    return message


def format_created(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def utterance_end_message(channel: int, channels: int, last_word_end: float) -> dict[str, Any]:
    return {
        "type": "UtteranceEnd",
        "channel": [channel, channels],
        "last_word_end": _seconds(last_word_end),
    }


def speech_started_message(channel: int, channels: int, timestamp: float) -> dict[str, Any]:
    return {
        "type": "SpeechStarted",
        "channel": [channel, channels],
        "timestamp": _seconds(timestamp),
    }


def configure_failure_message(request_id: str, *, has_keyterms: bool) -> dict[str, Any]:
    code = "CONFIGURE_KEYTERMS_NOT_SUPPORTED" if has_keyterms else "CONFIGURE_INTERNAL_ERROR"
    return {
        "type": "ConfigureFailure",
        "request_id": request_id,
        "code": code,
        "description": "The embedded engine does not support mid-stream configuration.",
    }


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def header_values(items: Iterable[str]) -> list[str]:
    """Split comma-separated header values (``Sec-WebSocket-Protocol: token, key``)."""
    out: list[str] = []
    for item in items:
        out.extend(part.strip() for part in item.split(",") if part.strip())
    return out
