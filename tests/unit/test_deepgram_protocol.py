"""StreamingConfig -> Deepgram query string, validation, and Deepgram JSON -> proto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from transcribe.v1 import transcribe_pb2 as pb

from gateway.errors import ConfigError
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
