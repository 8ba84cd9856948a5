"""Deepgram's live ``/v1/listen`` protocol, both ways.

Outbound: a StreamingConfig is validated and turned into the query string (booleans as
``true``/``false``, lists as repeated keys, ``extra`` as ``key:value``). Inbound: each JSON text
message becomes a proto message, times still relative to the upstream connection; the session
rebases them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import ConfigError, QueryTooLongError

DEEPGRAM_URL: Final = "wss://api.deepgram.com/v1/listen"

KEEPALIVE: Final = '{"type":"KeepAlive"}'
CLOSE_STREAM: Final = '{"type":"CloseStream"}'

ENCODING_NAMES: Final[Mapping[int, str]] = {
    pb.AUDIO_ENCODING_LINEAR16: "linear16",
    pb.AUDIO_ENCODING_LINEAR32: "linear32",
    pb.AUDIO_ENCODING_MULAW: "mulaw",
    pb.AUDIO_ENCODING_ALAW: "alaw",
    pb.AUDIO_ENCODING_FLAC: "flac",
    pb.AUDIO_ENCODING_AMR_NB: "amr-nb",
    pb.AUDIO_ENCODING_AMR_WB: "amr-wb",
    pb.AUDIO_ENCODING_OPUS: "opus",
    pb.AUDIO_ENCODING_OGG_OPUS: "ogg-opus",
    pb.AUDIO_ENCODING_SPEEX: "speex",
    pb.AUDIO_ENCODING_G729: "g729",
}
# Codecs whose sample rate is fixed by the codec itself.
_FIXED_RATES: Final[Mapping[int, int]] = {
    pb.AUDIO_ENCODING_AMR_NB: 8000,
    pb.AUDIO_ENCODING_AMR_WB: 16000,
}
REDACTION_NAMES: Final[Mapping[int, str]] = {
    pb.REDACTION_PCI: "pci",
    pb.REDACTION_NUMBERS: "numbers",
    pb.REDACTION_AGGRESSIVE_NUMBERS: "aggressive_numbers",
    pb.REDACTION_SSN: "ssn",
}
# Optional booleans, in query order: proto field name == Deepgram parameter name.
_BOOL_OPTIONS: Final = (
    "multichannel",
    "interim_results",
    "vad_events",
    "punctuate",
    "smart_format",
    "no_delay",
    "numerals",
    "dictation",
    "profanity_filter",
    "filler_words",
    "diarize",
    "mip_opt_out",
    "detect_entities",
)
# Every Deepgram parameter the typed fields produce; `upstream_params` may not shadow them.
MODELLED_PARAMS: Final = frozenset(
    {
        "model",
        "language",
        "version",
        "encoding",
        "sample_rate",
        "channels",
        "endpointing",
        "utterance_end_ms",
        "redact",
        "diarize_model",
        "diarize_version",
        "keyterm",
        "keywords",
        "search",
        "replace",
        "tag",
        "extra",
        "callback",
        "callback_method",
        "tier",
        "alternatives",
        *_BOOL_OPTIONS,
    }
)
_CALLBACK_METHODS: Final = frozenset({"POST", "GET", "PUT", "DELETE"})
# What an `upstream_params` name may be: a letter, then letters, digits, `_`, `.` or `-`.
PARAM_NAME_PATTERN: Final = r"[A-Za-z][A-Za-z0-9_.\-]{0,63}"
_PARAM_NAME: Final = re.compile(PARAM_NAME_PATTERN)
# The sample rates real audio has: 8 kHz telephony to 192 kHz studio recordings.
MIN_SAMPLE_RATE: Final = 8_000
MAX_SAMPLE_RATE: Final = 192_000
MAX_CHANNELS: Final = 20
# Longest query string sent upstream (URL-encoded). Deepgram answers HTTP 414 somewhere above
# this; refusing it here blames the config, not the gateway's upstream URL.
MAX_QUERY_CHARS: Final = 8192
MAX_ENDPOINTING_MS: Final = 60_000
MAX_EXTRA_PAIR: Final = 2048


def validate(config: pb.StreamingConfig) -> None:
    """Raise ConfigError for the first value the gateway can tell is invalid, QueryTooLongError
    when the whole makes too long a query."""
    _validate_audio(config)
    if config.HasField("endpointing_ms") and not 1 <= config.endpointing_ms <= MAX_ENDPOINTING_MS:
        raise ConfigError("endpointing_ms", f"must be 1 to {MAX_ENDPOINTING_MS} milliseconds")
    if config.HasField("endpointing_disabled") and not config.endpointing_disabled:
        raise ConfigError("endpointing_disabled", "set it to true to disable endpointing, or leave it unset")
    if config.HasField("utterance_end_ms"):
        if not config.interim_results:
            raise ConfigError("utterance_end_ms", "requires interim_results to be true")
        if not 1 <= config.utterance_end_ms <= MAX_ENDPOINTING_MS:
            raise ConfigError("utterance_end_ms", f"must be 1 to {MAX_ENDPOINTING_MS} milliseconds")
    for i, redaction in enumerate(config.redact):
        if redaction not in REDACTION_NAMES:
            raise ConfigError(f"redact[{i}]", f"unknown or unspecified redaction {redaction}")
    _require_nonblank("keyterms", config.keyterms)
    _require_nonblank("search", config.search)
    _require_nonblank("tags", config.tags)
    for i, keyword in enumerate(config.keywords):
        if not keyword.term.strip():
            raise ConfigError(f"keywords[{i}].term", "must not be empty")
        if keyword.HasField("intensifier") and not math.isfinite(keyword.intensifier):
            raise ConfigError(f"keywords[{i}].intensifier", "must be a finite number")
    for i, rule in enumerate(config.replace):
        if not rule.find or ":" in rule.find:
            raise ConfigError(f"replace[{i}].find", "must be non-empty and must not contain ':'")
    for key, value in config.extra.items():
        if not key or ":" in key:
            raise ConfigError("extra", f"key {key!r} must be non-empty and must not contain ':'")
        if len(key) + 1 + len(value) > MAX_EXTRA_PAIR:
            raise ConfigError("extra", f"pair {key!r} is longer than {MAX_EXTRA_PAIR} characters")
    if config.callback_method and config.callback_method.upper() not in _CALLBACK_METHODS:
        raise ConfigError("callback_method", "must be POST, GET, PUT or DELETE")
    for name in config.upstream_params:
        if not _PARAM_NAME.fullmatch(name):
            raise ConfigError(
                "upstream_params", f"{name[:80]!r} is not a valid parameter name ({PARAM_NAME_PATTERN})"
            )
        if name in MODELLED_PARAMS:
            raise ConfigError("upstream_params", f"{name!r} has a typed field: set that instead")
    offset = config.start_offset_seconds
    if not math.isfinite(offset) or offset < 0:
        raise ConfigError("start_offset_seconds", "must be zero or a positive number of seconds")
    length = len(urlencode(query_params(config)))
    if length > MAX_QUERY_CHARS:
        raise QueryTooLongError(length, MAX_QUERY_CHARS)


def _validate_audio(config: pb.StreamingConfig) -> None:
    if config.encoding == pb.AUDIO_ENCODING_UNSPECIFIED:
        if config.sample_rate:
            raise ConfigError(
                "sample_rate", "only valid with an encoding (containerised audio carries its own)"
            )
        if config.channels:
            raise ConfigError("channels", "only valid with an encoding (containerised audio carries its own)")
        return
    if config.encoding not in ENCODING_NAMES:
        raise ConfigError("encoding", f"unknown encoding value {config.encoding}")
    name = ENCODING_NAMES[config.encoding]
    if not config.sample_rate:
        raise ConfigError("sample_rate", f"required with encoding {name}")
    if config.sample_rate > MAX_SAMPLE_RATE:
        raise ConfigError("sample_rate", f"{config.sample_rate} Hz is above the {MAX_SAMPLE_RATE} Hz maximum")
    if config.sample_rate < MIN_SAMPLE_RATE:
        raise ConfigError("sample_rate", f"{config.sample_rate} Hz is below the {MIN_SAMPLE_RATE} Hz minimum")
    fixed = _FIXED_RATES.get(config.encoding)
    if fixed is not None and config.sample_rate != fixed:
        raise ConfigError("sample_rate", f"{name} audio is always {fixed} Hz")
    if config.channels > MAX_CHANNELS:
        raise ConfigError("channels", f"at most {MAX_CHANNELS} channels")


def _require_nonblank(field: str, values: Iterator[str] | Any) -> None:
    for i, value in enumerate(values):
        if not value.strip():
            raise ConfigError(f"{field}[{i}]", "must not be empty")


def query_params(config: pb.StreamingConfig) -> list[tuple[str, str]]:
    """Deepgram's query parameters for a (validated) config, in a stable order."""
    params: list[tuple[str, str]] = []
    add = params.append
    for name in ("model", "language", "version"):
        if value := getattr(config, name):
            add((name, value))
    if config.encoding:
        add(("encoding", ENCODING_NAMES[config.encoding]))
        add(("sample_rate", str(config.sample_rate)))
        if config.channels:
            add(("channels", str(config.channels)))
    for name in _BOOL_OPTIONS:
        if config.HasField(name):  # type: ignore[arg-type]
            add((name, "true" if getattr(config, name) else "false"))
    if config.HasField("endpointing_ms"):
        add(("endpointing", str(config.endpointing_ms)))
    elif config.HasField("endpointing_disabled"):
        add(("endpointing", "false"))
    if config.HasField("utterance_end_ms"):
        add(("utterance_end_ms", str(config.utterance_end_ms)))
    params.extend(("redact", REDACTION_NAMES[r]) for r in config.redact)
    for name in ("diarize_model", "diarize_version"):
        if value := getattr(config, name):
            add((name, value))
    params.extend(("keyterm", term) for term in config.keyterms)
    for keyword in config.keywords:
        if keyword.HasField("intensifier"):
            add(("keywords", f"{keyword.term}:{keyword.intensifier:g}"))
        else:
            add(("keywords", keyword.term))
    params.extend(("search", term) for term in config.search)
    params.extend(("replace", f"{rule.find}:{rule.replace_with}") for rule in config.replace)
    params.extend(("tag", tag) for tag in config.tags)
    params.extend(("extra", f"{key}:{config.extra[key]}") for key in sorted(config.extra))
    if config.callback:
        add(("callback", config.callback))
    if config.callback_method:
        add(("callback_method", config.callback_method.upper()))
    if config.tier:
        add(("tier", config.tier))
    if config.alternatives:
        add(("alternatives", str(config.alternatives)))
    params.extend((name, config.upstream_params[name]) for name in sorted(config.upstream_params))
    return params


def listen_url(base_url: str, config: pb.StreamingConfig) -> str:
    """The full websocket URL for a session: the upstream's URL plus the config's query."""
    parts = urlsplit(base_url)
    query = urlencode(query_params(config))
    if parts.query:
        query = f"{parts.query}&{query}" if query else parts.query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def finalize_message(channel: int | None) -> str:
    if channel is None:
        return '{"type":"Finalize"}'
    return json.dumps({"type": "Finalize", "channel": channel}, separators=(",", ":"))


# --- inbound -----------------------------------------------------------------------------------
#
# Every upstream message is checked before use: types, finite numbers, sizes (below), then, per
# session, channels and times (InboundGuard). A message that fails is skipped as a whole, so no
# value it carries reaches the timeline or the client.

MAX_ALTERNATIVES: Final = 10
MAX_WORDS: Final = 10_000
# Search queries, hits per query, entities, languages, models, map entries.
MAX_ITEMS: Final = 1_000
MAX_TRANSCRIPT_CHARS: Final = 100_000
MAX_TEXT_CHARS: Final = 1_000
_MAX_UINT: Final = 2**31 - 1
# How far past the audio relayed an upstream time may fall (frame padding, rounding).
TIME_SLACK_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message type the gateway does not model (it is logged and skipped)."""

    type: str


UpstreamMessage = pb.Result | pb.SpeechStarted | pb.UtteranceEnd | pb.UpstreamMetadata | UnknownMessage
# MessageError.kind: a metrics label.
MessageKind = Literal["json", "shape", "size", "channel", "time"]


class MessageError(ValueError):
    """An upstream text frame is not a valid Deepgram message; ``kind`` says what is wrong."""

    def __init__(self, message: str, kind: MessageKind = "shape") -> None:
        super().__init__(message)
        self.kind: MessageKind = kind


def _reject_constant(name: str) -> float:
    raise MessageError(f"not JSON: {name} is not a number JSON allows", "json")


def parse_message(text: str | bytes) -> UpstreamMessage:
    """Turn one upstream JSON text frame into a proto message (times relative to the connection).

    Raises MessageError for anything but a well-formed message of the expected shape.
    """
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except MessageError:
        raise
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"not JSON: {exc}", "json") from exc
    if not isinstance(data, dict):
        raise MessageError("not a JSON object", "json")
    kind = data.get("type")
    try:
        if kind == "Results":
            return _result(data)
        if kind == "Metadata":
            return _metadata(data)
        if kind == "SpeechStarted":
            index, count = _channel(data, "channel")
            return pb.SpeechStarted(
                channel_index=index, channel_count=count, timestamp_seconds=_time(data, "timestamp", None)
            )
        if kind == "UtteranceEnd":
            index, count = _channel(data, "channel")
            return pb.UtteranceEnd(
                channel_index=index,
                channel_count=count,
                last_word_end_seconds=_time(data, "last_word_end", None),
            )
    except MessageError as exc:
        raise MessageError(f"invalid {kind} message: {exc}", exc.kind) from exc
    except (TypeError, ValueError, OverflowError) as exc:
        # What the checks below should have caught; still a bad message, not a gateway failure.
        raise MessageError(f"invalid {kind} message: {exc!r}") from exc
    return UnknownMessage(kind[:MAX_TEXT_CHARS] if isinstance(kind, str) else repr(kind)[:MAX_TEXT_CHARS])


def _get(data: dict[str, Any], key: str) -> Any:
    # Deepgram sends null for some absent values; null means absent everywhere.
    return data.get(key)


def _number(data: dict[str, Any], key: str, default: float | None = 0.0) -> float:
    value = _get(data, key)
    if value is None:
        if default is None:
            raise MessageError(f"{key} is missing")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError(f"{key} is not a number: {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError as exc:
        raise MessageError(f"{key} is out of range", "time") from exc
    if not math.isfinite(number):
        raise MessageError(f"{key} is not finite", "time")
    return number


def _time(data: dict[str, Any], key: str, default: float | None = 0.0) -> float:
    value = _number(data, key, default)
    if value < 0:
        raise MessageError(f"{key} is negative: {value}", "time")
    return value


def _uint(data: dict[str, Any], key: str) -> int:
    value = _get(data, key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise MessageError(f"{key} is not an integer: {type(value).__name__}")
    if not 0 <= value <= _MAX_UINT:
        raise MessageError(f"{key} is out of range", "size")
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = _get(data, key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MessageError(f"{key} is not a boolean: {type(value).__name__}")
    return value


def _text(data: dict[str, Any], key: str, limit: int = MAX_TEXT_CHARS) -> str:
    value = _get(data, key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MessageError(f"{key} is not a string: {type(value).__name__}")
    if len(value) > limit:
        raise MessageError(f"{key} is longer than {limit} characters", "size")
    return value


def _items(data: dict[str, Any], key: str, limit: int = MAX_ITEMS) -> list[Any]:
    value = _get(data, key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MessageError(f"{key} is not a list: {type(value).__name__}")
    if len(value) > limit:
        raise MessageError(f"{key} has more than {limit} items", "size")
    return value


def _objects(data: dict[str, Any], key: str, limit: int = MAX_ITEMS) -> list[dict[str, Any]]:
    items = _items(data, key, limit)
    for item in items:
        if not isinstance(item, dict):
            raise MessageError(f"an item of {key} is not an object: {type(item).__name__}")
    return items


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = _get(data, key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError(f"{key} is not an object: {type(value).__name__}")
    if len(value) > MAX_ITEMS:
        raise MessageError(f"{key} has more than {MAX_ITEMS} entries", "size")
    return value


def _channel(data: dict[str, Any], key: str) -> tuple[int, int]:
    value = _get(data, key)
    if value is None:
        return 0, 1
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise MessageError(f"{key} is not a pair of integers [index, count]", "channel")
    index, count = value
    if not 0 <= index < count <= _MAX_UINT:
        raise MessageError(f"{key} {value} has no valid channel index and count", "channel")
    return index, count


def _result(data: dict[str, Any]) -> pb.Result:
    # Built in place (each repeated field's add()), not from lists of messages that the
    # constructor would copy, and only the parts present: a result is parsed for every message.
    index, count = _channel(data, "channel_index")
    channel = _object(data, "channel")
    metadata = _object(data, "metadata")
    result = pb.Result(
        channel_index=index,
        channel_count=count,
        start_seconds=_time(data, "start"),
        duration_seconds=_time(data, "duration"),
        is_final=_flag(data, "is_final"),
        speech_final=_flag(data, "speech_final"),
        from_finalize=_flag(data, "from_finalize"),
    )
    alternatives = result.alternatives
    for a in _objects(channel, "alternatives", MAX_ALTERNATIVES):
        _alternative(a, alternatives.add())
    if channel.get("search") is not None:
        searches = result.search
        for s in _objects(channel, "search"):
            search = searches.add(query=_text(s, "query"))
            for h in _objects(s, "hits"):
                search.hits.add(
                    confidence=_number(h, "confidence"),
                    start_seconds=_time(h, "start"),
                    end_seconds=_time(h, "end"),
                    snippet=_text(h, "snippet", MAX_TRANSCRIPT_CHARS),
                )
    if data.get("entities") is not None:
        entities = result.entities
        for e in _objects(data, "entities"):
            entities.add(
                label=_text(e, "label"),
                value=_text(e, "value"),
                raw_value=_text(e, "raw_value"),
                confidence=_number(e, "confidence"),
                start_word=_uint(e, "start_word"),
                end_word=_uint(e, "end_word"),
            )
    meta = result.metadata
    meta.upstream_request_id = _text(metadata, "request_id")
    model_info = _object(metadata, "model_info")
    info = meta.model_info
    # Set even when empty: the message's presence is part of what clients have always seen.
    info.SetInParent()
    if model_info:
        info.name = _text(model_info, "name")
        info.version = _text(model_info, "version")
        info.arch = _text(model_info, "arch")
    meta.model_uuid = _text(metadata, "model_uuid")
    extra = _object(metadata, "extra")
    if extra:
        meta.extra.update(_string_map(extra))
    return result


def _alternative(data: dict[str, Any], alternative: pb.Alternative) -> None:
    languages = _items(data, "languages")
    if not all(isinstance(lang, str) and len(lang) <= MAX_TEXT_CHARS for lang in languages):
        raise MessageError("languages is not a list of short strings")
    alternative.transcript = _text(data, "transcript", MAX_TRANSCRIPT_CHARS)
    alternative.confidence = _number(data, "confidence")
    if languages:
        alternative.languages.extend(languages)
    words = alternative.words
    for w in _objects(data, "words", MAX_WORDS):
        word = words.add(
            word=_text(w, "word"),
            start_seconds=_time(w, "start"),
            end_seconds=_time(w, "end"),
            confidence=_number(w, "confidence"),
            punctuated_word=_text(w, "punctuated_word"),
            language=_text(w, "language"),
        )
        if _get(w, "speaker") is not None:
            word.speaker = _uint(w, "speaker")


def _model_info(data: dict[str, Any]) -> pb.ModelInfo:
    return pb.ModelInfo(name=_text(data, "name"), version=_text(data, "version"), arch=_text(data, "arch"))


def _string_map(data: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if len(key) > MAX_TEXT_CHARS or len(text) > MAX_TEXT_CHARS:
            raise MessageError(f"an extra entry is longer than {MAX_TEXT_CHARS} characters", "size")
        out[key] = text
    return out


def _metadata(data: dict[str, Any]) -> pb.UpstreamMetadata:
    models = _items(data, "models")
    if not all(isinstance(m, str) and len(m) <= MAX_TEXT_CHARS for m in models):
        raise MessageError("models is not a list of short strings")
    model_info = _object(data, "model_info")
    return pb.UpstreamMetadata(
        request_id=_text(data, "request_id"),
        created=_text(data, "created"),
        duration_seconds=_time(data, "duration"),
        channels=_uint(data, "channels"),
        models=models,
        model_info={key[:MAX_TEXT_CHARS]: _model_info(_object(model_info, key)) for key in list(model_info)},
        extra=_string_map(_object(data, "extra")),
        transaction_key=_text(data, "transaction_key"),
        sha256=_text(data, "sha256"),
    )


class InboundGuard:
    """One session's check of parsed upstream messages against what the session knows: its
    channel count and how much audio it relayed. Times are relative to the upstream connection,
    so none may lie past the audio relayed (plus :data:`TIME_SLACK_S`)."""

    def __init__(self, config: pb.StreamingConfig) -> None:
        self.channels = (config.channels or 1) if config.multichannel else 1
        self.reported = False

    def check(self, message: UpstreamMessage, relayed_seconds: float | None) -> None:
        """Raise MessageError when ``message`` does not fit this session.

        ``relayed_seconds`` is the audio sent upstream so far (None when unknown: then only the
        checks of :func:`parse_message` apply to times).
        """
        if isinstance(message, UnknownMessage | pb.UpstreamMetadata):
            return
        if message.channel_index >= self.channels:
            raise MessageError(
                f"channel {message.channel_index} of a session with {self.channels} channel(s)", "channel"
            )
        if relayed_seconds is None:
            return
        limit = relayed_seconds + TIME_SLACK_S
        latest = max(_times(message), default=0.0)
        if latest > limit:
            raise MessageError(
                f"a time of {latest:g} s is past the {relayed_seconds:g} s of audio relayed", "time"
            )

    def first_report(self) -> bool:
        """True the first time it is asked: invalid messages are logged once per session."""
        first = not self.reported
        self.reported = True
        return first


def _times(message: pb.Result | pb.SpeechStarted | pb.UtteranceEnd) -> Iterator[float]:
    if isinstance(message, pb.SpeechStarted):
        yield message.timestamp_seconds
    elif isinstance(message, pb.UtteranceEnd):
        yield message.last_word_end_seconds
    else:
        yield message.start_seconds + message.duration_seconds
        for alternative in message.alternatives:
            for word in alternative.words:
                yield word.end_seconds
                yield word.start_seconds
        for search in message.search:
            for hit in search.hits:
                yield hit.end_seconds
                yield hit.start_seconds
