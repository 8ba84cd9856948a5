"""StreamingConfig -> Deepgram query string, validation, and Deepgram JSON -> proto."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import ConfigError, QueryTooLongError, Reason
from gateway.protocol import deepgram
from tests.conftest import FIXTURES

EVERY_OPTION = pb.StreamingConfig(
    model="nova-3",
    language="en-US",
    version="latest",
    encoding=pb.AUDIO_ENCODING_MULAW,
    sample_rate=8000,
    channels=2,
    multichannel=True,
    interim_results=True,
    endpointing_ms=300,
    utterance_end_ms=1000,
    vad_events=True,
    punctuate=True,
    smart_format=False,
    no_delay=True,
    numerals=True,
    dictation=False,
    profanity_filter=True,
    filler_words=True,
    redact=[pb.REDACTION_PCI, pb.REDACTION_SSN],
    diarize=True,
    diarize_model="latest",
    diarize_version="2021-07-14.0",
    keyterms=["Deepgram", "customer service"],
    keywords=[pb.Keyword(term="gateway", intensifier=2.5), pb.Keyword(term="relay")],
    search=["refund"],
    replace=[pb.Replacement(find="gonna", replace_with="going to")],
    tags=["team-a", "call"],
    extra={"tenant": "acme", "call_id": "42"},
    callback="https://example.invalid/cb",
    callback_method="put",
    mip_opt_out=True,
    detect_entities=True,
    tier="nova",
    alternatives=2,
    upstream_params={"x_new_option": "on"},
)


def test_every_option_becomes_the_expected_query() -> None:
    """Each modelled option maps to Deepgram's parameter name and wire form, in a stable order."""
    assert deepgram.query_params(EVERY_OPTION) == [
        ("model", "nova-3"),
        ("language", "en-US"),
        ("version", "latest"),
        ("encoding", "mulaw"),
        ("sample_rate", "8000"),
        ("channels", "2"),
        ("multichannel", "true"),
        ("interim_results", "true"),
        ("vad_events", "true"),
        ("punctuate", "true"),
        ("smart_format", "false"),
        ("no_delay", "true"),
        ("numerals", "true"),
        ("dictation", "false"),
        ("profanity_filter", "true"),
        ("filler_words", "true"),
        ("diarize", "true"),
        ("mip_opt_out", "true"),
        ("detect_entities", "true"),
        ("endpointing", "300"),
        ("utterance_end_ms", "1000"),
        ("redact", "pci"),
        ("redact", "ssn"),
        ("diarize_model", "latest"),
        ("diarize_version", "2021-07-14.0"),
        ("keyterm", "Deepgram"),
        ("keyterm", "customer service"),
        ("keywords", "gateway:2.5"),
        ("keywords", "relay"),
        ("search", "refund"),
        ("replace", "gonna:going to"),
        ("tag", "team-a"),
        ("tag", "call"),
        ("extra", "call_id:42"),
        ("extra", "tenant:acme"),
        ("callback", "https://example.invalid/cb"),
        ("callback_method", "PUT"),
        ("tier", "nova"),
        ("alternatives", "2"),
        ("x_new_option", "on"),
    ]


def test_listen_url_encodes_the_query_and_keeps_the_base() -> None:
    """The URL keeps the upstream's path and existing query, and percent-encodes values."""
    url = deepgram.listen_url("wss://api.eu.deepgram.com/v1/listen?region=eu", EVERY_OPTION)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "api.eu.deepgram.com", "/v1/listen")
    pairs = parse_qsl(parts.query)
    assert pairs[0] == ("region", "eu")
    assert pairs[1:] == deepgram.query_params(EVERY_OPTION)
    assert "customer+service" in parts.query


def test_unset_options_are_not_sent() -> None:
    """An empty config sends nothing, so every upstream default applies."""
    assert deepgram.query_params(pb.StreamingConfig()) == []


def test_endpointing_disabled_is_sent_as_false() -> None:
    config = pb.StreamingConfig(endpointing_disabled=True)
    assert deepgram.query_params(config) == [("endpointing", "false")]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16), "sample_rate"),
        (pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=500_000), "sample_rate"),
        (pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_AMR_NB, sample_rate=16000), "sample_rate"),
        (pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000, channels=21), "channels"),
        (pb.StreamingConfig(encoding=99, sample_rate=16000), "encoding"),  # type: ignore[arg-type]
        (pb.StreamingConfig(sample_rate=16000), "sample_rate"),
        (pb.StreamingConfig(channels=2), "channels"),
        (pb.StreamingConfig(endpointing_ms=0), "endpointing_ms"),
        (pb.StreamingConfig(endpointing_ms=60_001), "endpointing_ms"),
        (pb.StreamingConfig(endpointing_disabled=False), "endpointing_disabled"),
        (pb.StreamingConfig(utterance_end_ms=1000), "utterance_end_ms"),
        (pb.StreamingConfig(interim_results=True, utterance_end_ms=0), "utterance_end_ms"),
        (pb.StreamingConfig(redact=[pb.REDACTION_UNSPECIFIED]), "redact[0]"),
        (pb.StreamingConfig(keyterms=["ok", " "]), "keyterms[1]"),
        (pb.StreamingConfig(keywords=[pb.Keyword(term="")]), "keywords[0].term"),
        (
            pb.StreamingConfig(keywords=[pb.Keyword(term="x", intensifier=float("inf"))]),
            "keywords[0].intensifier",
        ),
        (pb.StreamingConfig(replace=[pb.Replacement(find="a:b", replace_with="c")]), "replace[0].find"),
        (pb.StreamingConfig(extra={"a:b": "c"}), "extra"),
        (pb.StreamingConfig(extra={"k": "v" * 3000}), "extra"),
        (pb.StreamingConfig(callback_method="PATCH"), "callback_method"),
        (pb.StreamingConfig(upstream_params={"model": "nova-3"}), "upstream_params"),
        (pb.StreamingConfig(upstream_params={"bad name": "x"}), "upstream_params"),
        (pb.StreamingConfig(start_offset_seconds=-1), "start_offset_seconds"),
        (pb.StreamingConfig(start_offset_seconds=float("nan")), "start_offset_seconds"),
    ],
)
def test_invalid_configs_name_the_field(config: pb.StreamingConfig, field: str) -> None:
    """Each invalid value is rejected before any upstream connection, naming its field."""
    with pytest.raises(ConfigError) as info:
        deepgram.validate(config)
    assert info.value.field == field
    assert str(info.value).startswith(f"config.{field}: ")


def test_every_option_config_is_valid() -> None:
    deepgram.validate(EVERY_OPTION)


# --- inbound: every field of every recorded message arrives in the proto ---------------------

_RESULT_FIELDS = {
    "type": None,
    "channel_index": lambda r, v: [r.channel_index, r.channel_count] == v,
    "start": lambda r, v: r.start_seconds == v,
    "duration": lambda r, v: r.duration_seconds == v,
    "is_final": lambda r, v: r.is_final == v,
    "speech_final": lambda r, v: r.speech_final == v,
    "from_finalize": lambda r, v: r.from_finalize == v,
}
_WORD_FIELDS = {
    "word": lambda w, v: w.word == v,
    "start": lambda w, v: w.start_seconds == v,
    "end": lambda w, v: w.end_seconds == v,
    "confidence": lambda w, v: w.confidence == v,
    "punctuated_word": lambda w, v: w.punctuated_word == v,
    "speaker": lambda w, v: w.HasField("speaker") and w.speaker == v,
    "language": lambda w, v: w.language == v,
}


def assert_result_matches(data: dict[str, Any], result: pb.Result) -> None:
    """Walk every key of a Deepgram Results message and find its value in the proto."""
    for key, value in data.items():
        if key == "channel":
            assert set(value) <= {"alternatives", "search"}, f"unmapped channel keys {set(value)}"
            assert len(result.alternatives) == len(value["alternatives"])
            for alt_data, alt in zip(value["alternatives"], result.alternatives, strict=True):
                assert set(alt_data) <= {"transcript", "confidence", "words", "languages"}
                assert alt.transcript == alt_data["transcript"]
                assert alt.confidence == alt_data["confidence"]
                assert list(alt.languages) == alt_data.get("languages", [])
                assert len(alt.words) == len(alt_data["words"])
                for word_data, word in zip(alt_data["words"], alt.words, strict=True):
                    for word_key, word_value in word_data.items():
                        assert _WORD_FIELDS[word_key](word, word_value), (word_key, word_value)
        elif key == "metadata":
            assert set(value) <= {"request_id", "model_info", "model_uuid", "extra"}
            assert result.metadata.upstream_request_id == value["request_id"]
            assert result.metadata.model_uuid == value["model_uuid"]
            info = value["model_info"]
            assert (result.metadata.model_info.name, result.metadata.model_info.version) == (
                info["name"],
                info["version"],
            )
            assert result.metadata.model_info.arch == info["arch"]
            assert dict(result.metadata.extra) == value.get("extra", {})
        else:
            check = _RESULT_FIELDS[key]
            assert check is None or check(result, value), (key, value)


def fixture_results() -> list[Path]:
    return sorted(FIXTURES.glob("*-response.json"))


@pytest.mark.parametrize("path", fixture_results(), ids=lambda p: p.name)
def test_recorded_results_map_without_losing_a_field(path: Path) -> None:
    """Every field of every recorded Deepgram Results message arrives in the proto Result."""
    text = path.read_text()
    result = deepgram.parse_message(text)
    assert isinstance(result, pb.Result)
    assert_result_matches(json.loads(text), result)


def test_there_are_recorded_fixtures() -> None:
    assert len(fixture_results()) == 4


def test_all_optional_result_fields_map() -> None:
    """Fields the recorded fixtures lack (speaker, language, search, entities, extra) map too."""
    data = {
        "type": "Results",
        "channel_index": [1, 2],
        "duration": 1.5,
        "start": 3.25,
        "is_final": True,
        "speech_final": False,
        "from_finalize": True,
        "channel": {
            "alternatives": [
                {
                    "transcript": "hola world",
                    "confidence": 0.9,
                    "languages": ["es", "en"],
                    "words": [
                        {
                            "word": "hola",
                            "start": 3.3,
                            "end": 3.6,
                            "confidence": 0.8,
                            "speaker": 0,
                            "language": "es",
                            "punctuated_word": "Hola",
                        },
                        {
                            "word": "world",
                            "start": 3.7,
                            "end": 4.0,
                            "confidence": 0.95,
                            "speaker": 1,
                            "language": "en",
                            "punctuated_word": "world.",
                        },
                    ],
                }
            ],
            "search": [
                {
                    "query": "world",
                    "hits": [{"confidence": 0.7, "start": 3.7, "end": 4.0, "snippet": "world"}],
                }
            ],
        },
        "entities": [
            {
                "label": "LOCATION",
                "value": "world",
                "raw_value": "World",
                "confidence": 0.6,
                "start_word": 1,
                "end_word": 2,
            }
        ],
        "metadata": {
            "request_id": "r",
            "model_info": {"name": "n", "version": "v", "arch": "a"},
            "model_uuid": "u",
            "extra": {"tenant": "acme"},
        },
    }
    result = deepgram.parse_message(json.dumps(data))
    assert isinstance(result, pb.Result)
    assert_result_matches({k: v for k, v in data.items() if k != "entities"}, result)
    assert result.alternatives[0].words[0].speaker == 0
    [search] = result.search
    assert (search.query, search.hits[0].snippet, search.hits[0].start_seconds) == ("world", "world", 3.7)
    [entity] = result.entities
    assert (entity.label, entity.value, entity.raw_value, entity.start_word, entity.end_word) == (
        "LOCATION",
        "world",
        "World",
        1,
        2,
    )
    assert entity.confidence == 0.6


def test_word_without_speaker_has_no_speaker() -> None:
    result = deepgram.parse_message(
        '{"type":"Results","channel":{"alternatives":[{"transcript":"a","confidence":1,'
        '"words":[{"word":"a","start":0,"end":1,"confidence":1}]}]}}'
    )
    assert isinstance(result, pb.Result)
    assert not result.alternatives[0].words[0].HasField("speaker")


def test_metadata_maps_every_field() -> None:
    """Deepgram's end-of-session Metadata becomes an UpstreamMetadata, every field kept."""
    text = (
        '{"type":"Metadata","transaction_key":"deprecated","request_id":"01a03ac3","sha256":"incomplete",'
        '"created":"2026-08-25T21:11:31.685Z","duration":44.259937,"channels":1,'
        '"models":["7e3b"],"model_info":{"7e3b":{"name":"2-phonecall-nova","version":"2024-02-07.20824",'
        '"arch":"nova-2"}},"extra":{"k":"v"}}'
    )
    message = deepgram.parse_message(text)
    assert message == pb.UpstreamMetadata(
        request_id="01a03ac3",
        created="2026-08-25T21:11:31.685Z",
        duration_seconds=44.259937,
        channels=1,
        models=["7e3b"],
        model_info={"7e3b": pb.ModelInfo(name="2-phonecall-nova", version="2024-02-07.20824", arch="nova-2")},
        extra={"k": "v"},
        transaction_key="deprecated",
        sha256="incomplete",
    )


def test_speech_started_and_utterance_end() -> None:
    assert deepgram.parse_message(
        '{"type":"SpeechStarted","channel":[0,1],"timestamp":9.54}'
    ) == pb.SpeechStarted(channel_index=0, channel_count=1, timestamp_seconds=9.54)
    assert deepgram.parse_message(
        '{"channel":[1,2],"last_word_end":2.395,"type":"UtteranceEnd"}'
    ) == pb.UtteranceEnd(channel_index=1, channel_count=2, last_word_end_seconds=2.395)


def test_unknown_types_are_reported_not_fatal() -> None:
    assert deepgram.parse_message('{"type":"ConfigureSuccess"}') == deepgram.UnknownMessage(
        "ConfigureSuccess"
    )


@pytest.mark.parametrize("text", ["not json", "[1,2]", '{"type":"SpeechStarted","channel":[0,1]}'])
def test_malformed_messages_raise(text: str) -> None:
    with pytest.raises(deepgram.MessageError):
        deepgram.parse_message(text)


# --- inbound validation: nothing an upstream sends is trusted --------------------------------


def counter_result(**overrides: Any) -> dict[str, Any]:
    """A valid final Results message, as the stand-in sends, with top-level keys replaced."""
    data: dict[str, Any] = {
        "type": "Results",
        "channel_index": [0, 1],
        "start": 0.0,
        "duration": 0.16,
        "is_final": True,
        "channel": {
            "alternatives": [
                {
                    "transcript": "w0 w1",
                    "confidence": 0.99,
                    "words": [
                        {"word": "w0", "start": 0.0, "end": 0.08, "confidence": 0.99},
                        {"word": "w1", "start": 0.08, "end": 0.16, "confidence": 0.99},
                    ],
                }
            ]
        },
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("not json", "json"),
        ("[1, 2]", "json"),
        ('{"type":"Results","duration":Infinity}', "json"),
        ('{"type":"Results","start":NaN}', "json"),
        (json.dumps(counter_result(channel="oops")), "shape"),
        (json.dumps(counter_result(channel={"alternatives": 5})), "shape"),
        (json.dumps(counter_result(channel={"alternatives": [{"words": 5}]})), "shape"),
        (json.dumps(counter_result(channel={"alternatives": [{"words": "abc"}]})), "shape"),
        (json.dumps(counter_result(channel={"alternatives": [{"words": [{"start": "0"}]}]})), "shape"),
        (json.dumps(counter_result(channel={"alternatives": [{"transcript": 7}]})), "shape"),
        (json.dumps(counter_result(channel={"alternatives": [{}] * 11})), "size"),
        (json.dumps(counter_result(channel={"alternatives": [{"transcript": "x" * 100_001}]})), "size"),
        (json.dumps(counter_result(duration="inf")), "shape"),
        (json.dumps(counter_result(start=1e400)), "json"),  # json.dumps writes Infinity
        (json.dumps(counter_result(start=-1)), "time"),
        (json.dumps(counter_result(is_final="yes")), "shape"),
        (json.dumps(counter_result(channel_index=[100_000_000])), "channel"),
        (json.dumps(counter_result(channel_index=[2, 2])), "channel"),
        (json.dumps(counter_result(channel_index=["0", 1])), "channel"),
        (json.dumps(counter_result(channel_index=[0, 2**40])), "channel"),
        (json.dumps(counter_result(entities=[{"start_word": 2**40}])), "size"),
        (json.dumps(counter_result(entities=[{"start_word": -1}])), "size"),
        (json.dumps(counter_result(metadata={"model_info": []})), "shape"),
        ('{"type":"Results","start":1' + "0" * 400 + "}", "time"),
        ('{"type":"SpeechStarted","channel":[0,1],"timestamp":"9"}', "shape"),
        ('{"type":"UtteranceEnd","channel":"0","last_word_end":1}', "channel"),
        ('{"type":"Metadata","duration":-3}', "time"),
        ('{"type":"Metadata","models":[1]}', "shape"),
    ],
)
def test_invalid_upstream_messages_raise_message_error_with_a_kind(text: str, kind: str) -> None:
    """Wrong types, non-finite or negative times, bad channels and oversized lists are refused."""
    with pytest.raises(deepgram.MessageError) as info:
        deepgram.parse_message(text)
    assert info.value.kind == kind


_WRONG_VALUES: list[Any] = [None, "oops", 7, -1, 1e300, True, [], [1, 2], {}, {"a": 1}]


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [path] + [p for key, item in value.items() for p in leaf_paths(item, (*path, key))]
    if isinstance(value, list):
        return [path] + [p for i, item in enumerate(value) for p in leaf_paths(item, (*path, i))]
    return [path]


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


def recorded_messages() -> list[Any]:
    return [json.loads(path.read_text()) for path in fixture_results()] + [
        {"type": "SpeechStarted", "channel": [0, 1], "timestamp": 9.54},
        {"type": "UtteranceEnd", "channel": [1, 2], "last_word_end": 2.395},
        {"type": "Metadata", "request_id": "r", "duration": 1.0, "channels": 1, "models": ["m"]},
    ]


def test_any_value_anywhere_parses_or_raises_message_error() -> None:
    """Every value of every recorded message, replaced by every wrong-typed value, either parses
    to a proto or raises MessageError: nothing else escapes to end a stream INTERNAL."""
    checked = 0
    for message in recorded_messages():
        for path in leaf_paths(message):
            for wrong in _WRONG_VALUES:
                text = json.dumps(replaced(message, path, wrong))
                with contextlib.suppress(deepgram.MessageError):
                    deepgram.parse_message(text)
                checked += 1
    assert checked > 1000


def test_null_means_absent() -> None:
    result = deepgram.parse_message(
        json.dumps(counter_result(metadata=None, entities=None, speech_final=None))
    )
    assert isinstance(result, pb.Result)
    assert (result.metadata.upstream_request_id, list(result.entities), result.speech_final) == (
        "",
        [],
        False,
    )


def parsed(data: dict[str, Any]) -> deepgram.UpstreamMessage:
    return deepgram.parse_message(json.dumps(data))


MONO = pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000)
STEREO = pb.StreamingConfig(
    encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000, channels=2, multichannel=True
)


@pytest.mark.parametrize(
    ("config", "message", "relayed", "kind"),
    [
        (MONO, counter_result(), 0.16, None),
        (MONO, counter_result(), None, None),
        (MONO, counter_result(start=1e300), 10.0, "time"),
        (MONO, counter_result(start=1e300), None, None),  # containerised: only finite is known
        (MONO, counter_result(start=10.5), 10.0, None),  # within the slack
        (MONO, counter_result(start=11.5), 10.0, "time"),
        (
            MONO,
            counter_result(channel={"alternatives": [{"words": [{"start": 0, "end": 99}]}]}),
            10.0,
            "time",
        ),
        (MONO, counter_result(channel_index=[1, 2]), 10.0, "channel"),
        (STEREO, counter_result(channel_index=[1, 2]), 10.0, None),
        (STEREO, counter_result(channel_index=[2, 3]), 10.0, "channel"),
        (MONO, {"type": "SpeechStarted", "channel": [0, 1], "timestamp": 50}, 10.0, "time"),
        (MONO, {"type": "UtteranceEnd", "channel": [3, 4], "last_word_end": 1}, 10.0, "channel"),
        (MONO, {"type": "Metadata", "duration": 1e6}, 10.0, None),
    ],
)
def test_inbound_guard_checks_channels_and_times_against_the_session(
    config: pb.StreamingConfig, message: dict[str, Any], relayed: float | None, kind: str | None
) -> None:
    """Channel indexes must be below the session's channel count, times within the audio."""
    guard = deepgram.InboundGuard(config)
    if kind is None:
        guard.check(parsed(message), relayed)
        return
    with pytest.raises(deepgram.MessageError) as info:
        guard.check(parsed(message), relayed)
    assert info.value.kind == kind


def test_inbound_guard_reports_once() -> None:
    guard = deepgram.InboundGuard(MONO)
    assert [guard.first_report() for _ in range(3)] == [True, False, False]


# --- config: ranges, names and lengths --------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=1), "sample_rate"),
        (pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_MULAW, sample_rate=7999), "sample_rate"),
        (pb.StreamingConfig(upstream_params={"x\n": "1"}), "upstream_params"),
        (pb.StreamingConfig(upstream_params={"a b": "1"}), "upstream_params"),
        (pb.StreamingConfig(upstream_params={"a\x00": "1"}), "upstream_params"),
        (pb.StreamingConfig(upstream_params={"1abc": "1"}), "upstream_params"),
        (pb.StreamingConfig(upstream_params={"a" * 65: "1"}), "upstream_params"),
    ],
)
def test_values_real_audio_and_urls_never_have_are_refused(config: pb.StreamingConfig, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        deepgram.validate(config)
    assert info.value.field == field


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 44100, 48000, 96000, 192000])
def test_real_sample_rates_are_accepted(rate: int) -> None:
    deepgram.validate(pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate))


@pytest.mark.parametrize(
    "config",
    [
        pb.StreamingConfig(model="m" * 10_000),
        pb.StreamingConfig(keyterms=[f"term number {i}" for i in range(4000)]),
        pb.StreamingConfig(upstream_params={"x_option": "v" * 9000}),
    ],
)
def test_a_query_over_the_bound_is_refused_before_connecting(config: pb.StreamingConfig) -> None:
    with pytest.raises(QueryTooLongError) as info:
        deepgram.validate(config)
    assert info.value.limit == deepgram.MAX_QUERY_CHARS < info.value.length
    assert info.value.reason == Reason.QUERY_TOO_LONG


def test_a_query_at_the_bound_is_accepted() -> None:
    name = "x_option"
    value = "v" * (deepgram.MAX_QUERY_CHARS - len(name) - 1)
    deepgram.validate(pb.StreamingConfig(upstream_params={name: value}))
