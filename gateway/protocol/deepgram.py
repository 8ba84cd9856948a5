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
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import ConfigError

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
_PARAM_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
MAX_SAMPLE_RATE: Final = 192_000
MAX_CHANNELS: Final = 20
MAX_ENDPOINTING_MS: Final = 60_000
MAX_EXTRA_PAIR: Final = 2048


def validate(config: pb.StreamingConfig) -> None:
    """Raise ConfigError for the first value the gateway can tell is invalid."""
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
        if not _PARAM_NAME.match(name):
            raise ConfigError("upstream_params", f"{name!r} is not a valid parameter name")
        if name in MODELLED_PARAMS:
            raise ConfigError("upstream_params", f"{name!r} has a typed field: set that instead")
    offset = config.start_offset_seconds
    if not math.isfinite(offset) or offset < 0:
        raise ConfigError("start_offset_seconds", "must be zero or a positive number of seconds")


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


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message type the gateway does not model (it is logged and skipped)."""

    type: str


UpstreamMessage = pb.Result | pb.SpeechStarted | pb.UtteranceEnd | pb.UpstreamMetadata | UnknownMessage


class MessageError(ValueError):
    """An upstream text frame is not a well-formed Deepgram message."""


def parse_message(text: str | bytes) -> UpstreamMessage:
    """Turn one upstream JSON text frame into a proto message (times relative to the connection)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MessageError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MessageError("not a JSON object")
    kind = data.get("type")
    try:
        if kind == "Results":
            return _result(data)
        if kind == "Metadata":
            return _metadata(data)
        if kind == "SpeechStarted":
            index, count = _channel(data.get("channel"))
            return pb.SpeechStarted(
                channel_index=index, channel_count=count, timestamp_seconds=float(data["timestamp"])
            )
        if kind == "UtteranceEnd":
            index, count = _channel(data.get("channel"))
            return pb.UtteranceEnd(
                channel_index=index,
                channel_count=count,
                last_word_end_seconds=float(data["last_word_end"]),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"malformed {kind} message: {exc!r}") from exc
    return UnknownMessage(str(kind))


def _channel(value: Any) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2:
        return int(value[0]), int(value[1])
    return 0, 1


def _result(data: dict[str, Any]) -> pb.Result:
    index, count = _channel(data.get("channel_index"))
    channel = data.get("channel") or {}
    metadata = data.get("metadata") or {}
    return pb.Result(
        channel_index=index,
        channel_count=count,
        start_seconds=float(data.get("start", 0.0)),
        duration_seconds=float(data.get("duration", 0.0)),
        is_final=bool(data.get("is_final", False)),
        speech_final=bool(data.get("speech_final", False)),
        from_finalize=bool(data.get("from_finalize", False)),
        alternatives=[_alternative(a) for a in channel.get("alternatives", ())],
        search=[
            pb.SearchResult(
                query=str(s.get("query", "")),
                hits=[
                    pb.SearchHit(
                        confidence=float(h.get("confidence", 0.0)),
                        start_seconds=float(h.get("start", 0.0)),
                        end_seconds=float(h.get("end", 0.0)),
                        snippet=str(h.get("snippet", "")),
                    )
                    for h in s.get("hits", ())
                ],
            )
            for s in channel.get("search", ())
        ],
        entities=[
            pb.Entity(
                label=str(e.get("label", "")),
                value=str(e.get("value", "")),
                raw_value=str(e.get("raw_value", "")),
                confidence=float(e.get("confidence", 0.0)),
                start_word=int(e.get("start_word", 0)),
                end_word=int(e.get("end_word", 0)),
            )
            for e in data.get("entities", ())
        ],
        metadata=pb.ResultMetadata(
            upstream_request_id=str(metadata.get("request_id", "")),
            model_info=_model_info(metadata.get("model_info")),
            model_uuid=str(metadata.get("model_uuid", "")),
            extra=_string_map(metadata.get("extra")),
        ),
    )


def _alternative(data: dict[str, Any]) -> pb.Alternative:
    return pb.Alternative(
        transcript=str(data.get("transcript", "")),
        confidence=float(data.get("confidence", 0.0)),
        words=[_word(w) for w in data.get("words", ())],
        languages=[str(lang) for lang in data.get("languages", ())],
    )


def _word(data: dict[str, Any]) -> pb.Word:
    word = pb.Word(
        word=str(data.get("word", "")),
        start_seconds=float(data.get("start", 0.0)),
        end_seconds=float(data.get("end", 0.0)),
        confidence=float(data.get("confidence", 0.0)),
        punctuated_word=str(data.get("punctuated_word", "")),
        language=str(data.get("language", "")),
    )
    if data.get("speaker") is not None:
        word.speaker = int(data["speaker"])
    return word


def _model_info(data: Any) -> pb.ModelInfo:
    if not isinstance(data, dict):
        return pb.ModelInfo()
    return pb.ModelInfo(
        name=str(data.get("name", "")),
        version=str(data.get("version", "")),
        arch=str(data.get("arch", "")),
    )


def _string_map(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def _metadata(data: dict[str, Any]) -> pb.UpstreamMetadata:
    model_info = data.get("model_info")
    return pb.UpstreamMetadata(
        request_id=str(data.get("request_id", "")),
        created=str(data.get("created", "")),
        duration_seconds=float(data.get("duration", 0.0)),
        channels=int(data.get("channels", 0)),
        models=[str(m) for m in data.get("models", ())],
        model_info=(
            {str(k): _model_info(v) for k, v in model_info.items()} if isinstance(model_info, dict) else {}
        ),
        extra=_string_map(data.get("extra")),
        transaction_key=str(data.get("transaction_key", "")),
        sha256=str(data.get("sha256", "")),
    )
