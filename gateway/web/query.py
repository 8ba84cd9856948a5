"""Deepgram's ``/v1/listen`` query string -> StreamingConfig: the inverse of
:func:`gateway.protocol.deepgram.query_params`.

Values are strings on the wire: booleans ``true``/``false``, lists as repeated keys, ``extra``
as ``key:value``, ``endpointing`` a number of milliseconds or ``false``. A key given twice
where one value is expected keeps the last, as query parsers commonly do. Parameters the
gateway does not model travel on in ``upstream_params``. ``sample_rate`` and ``channels``
without ``encoding`` are ignored, as Deepgram ignores them for containerised audio.

One parameter is the gateway's own and never goes upstream: ``gateway_events=true`` asks for
the extra ``GatewayEvent`` messages (reconnects, drain) that Deepgram's SDKs do not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from google.protobuf.descriptor import FieldDescriptor
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import ConfigError
from gateway.protocol import deepgram

EVENTS_PARAM: Final = "gateway_events"

_ENCODINGS: Final[Mapping[str, int]] = {name: value for value, name in deepgram.ENCODING_NAMES.items()}
_REDACTIONS: Final[Mapping[str, int]] = {name: value for value, name in deepgram.REDACTION_NAMES.items()}
_FIELDS: Final = pb.StreamingConfig.DESCRIPTOR.fields_by_name
# The optional booleans: a modelled parameter whose field (of the same name) is a bool.
_BOOL_PARAMS: Final = frozenset(
    name
    for name in deepgram.MODELLED_PARAMS
    if name in _FIELDS and _FIELDS[name].type == FieldDescriptor.TYPE_BOOL
)
_BOOLS: Final[Mapping[str, bool]] = {"true": True, "false": False}
_STRINGS: Final = (
    "model",
    "language",
    "version",
    "diarize_model",
    "diarize_version",
    "callback",
    "callback_method",
    "tier",
)
_REPEATED: Final[Mapping[str, str]] = {"keyterm": "keyterms", "search": "search", "tag": "tags"}
_MAX_UINT32: Final = 2**32 - 1


class QueryError(ValueError):
    """A query parameter has a value Deepgram would refuse; the handshake answers 400."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param}: {problem}")
        self.param = param
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ListenRequest:
    """What a ``/v1/listen`` query asks for."""

    config: pb.StreamingConfig
    gateway_events: bool = False


def parse_query(query: str) -> ListenRequest:
    """Parse and validate a ``/v1/listen`` query string (without the ``?``)."""
    config = pb.StreamingConfig()
    events = False
    encoding: str | None = None
    sample_rate: str | None = None
    channels: str | None = None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == EVENTS_PARAM:
            events = _bool(name, value)
        elif name in _STRINGS:
            setattr(config, name, value)
        elif name == "encoding":
            encoding = value
        elif name == "sample_rate":
            sample_rate = value
        elif name == "channels":
            channels = value
        elif name in _BOOL_PARAMS:
            setattr(config, name, _bool(name, value))
        elif name == "endpointing":
            config.ClearField("endpointing")
            if value.lower() == "false":
                config.endpointing_disabled = True
            elif value.lower() != "true":  # "true" asks for the default
                config.endpointing_ms = _uint(name, value)
        elif name == "utterance_end_ms":
            config.utterance_end_ms = _uint(name, value)
        elif name == "alternatives":
            config.alternatives = _uint(name, value)
        elif name == "redact":
            if value.lower() not in _REDACTIONS:
                raise QueryError(name, f"unknown redaction {value!r}; expected one of {sorted(_REDACTIONS)}")
            config.redact.append(_REDACTIONS[value.lower()])  # type: ignore[arg-type]
        elif name in _REPEATED:
            getattr(config, _REPEATED[name]).append(value)
        elif name == "keywords":
            config.keywords.append(_keyword(value))
        elif name == "replace":
            find, sep, replace_with = value.partition(":")
            if not sep:
                raise QueryError(name, f"expected find:replacement, got {value!r}")
            config.replace.append(pb.Replacement(find=find, replace_with=replace_with))
        elif name == "extra":
            key, sep, extra_value = value.partition(":")
            if not sep:
                raise QueryError(name, f"expected key:value, got {value!r}")
            config.extra[key] = extra_value
        else:
            config.upstream_params[name] = value
    if encoding is not None:
        if encoding.lower() not in _ENCODINGS:
            raise QueryError(
                "encoding", f"unknown encoding {encoding!r}; expected one of {sorted(_ENCODINGS)}"
            )
        config.encoding = _ENCODINGS[encoding.lower()]  # type: ignore[assignment]
        if sample_rate is not None:
            config.sample_rate = _uint("sample_rate", sample_rate)
        if channels is not None:
            config.channels = _uint("channels", channels)
    try:
        deepgram.validate(config)
    except ConfigError as exc:
        base, bracket, index = exc.field.partition("[")
        raise QueryError(_PARAM_OF_FIELD.get(base, base) + bracket + index, exc.problem) from exc
    return ListenRequest(config, events)


# StreamingConfig field -> the query parameter a user wrote.
_PARAM_OF_FIELD: Final[Mapping[str, str]] = {
    "endpointing_ms": "endpointing",
    "keyterms": "keyterm",
    "tags": "tag",
}


def _bool(name: str, value: str) -> bool:
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        raise QueryError(name, f"expected true or false, got {value!r}") from None


def _uint(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) > _MAX_UINT32:
        raise QueryError(name, f"expected a whole number, got {value!r}")
    return int(value)


def _keyword(value: str) -> pb.Keyword:
    term, sep, boost = value.rpartition(":")
    if sep:
        try:
            return pb.Keyword(term=term, intensifier=float(boost))
        except ValueError:
            pass
    return pb.Keyword(term=value)
