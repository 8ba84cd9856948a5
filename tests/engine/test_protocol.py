"""The engine's pure Deepgram protocol layer: options, credentials, control and server messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import pytest
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results

from tests.conftest import FIXTURES
from transcribe_engine import protocol
from transcribe_engine.protocol import Encoding, ModelInfo, OptionsError, ResultWindow, Word

MODEL = ModelInfo(name="whisper-tiny.en", version="faster-whisper-1.2.1", arch="whisper")


def test_defaults_match_deepgram() -> None:
    """With no query Deepgram expects containerised audio, endpointing 10 ms and no interims."""
    options = protocol.parse_options("")
    assert options.encoding is None
    assert options.endpointing_ms == 10
    assert not options.interim_results
    assert options.output_channels == 1
    assert options.language == "en"


def test_sdk_style_query_is_parsed() -> None:
    """Booleans in any case, repeated keys, '+' and '%20', extra pairs and unknown keys all parse."""
    options = protocol.parse_options(
        "model=nova-3&encoding=linear16&sample_rate=8000&channels=2&multichannel=TRUE"
        "&interim_results=True&punctuate=false&smart_format=true&endpointing=300"
        "&utterance_end_ms=1000&vad_events=true&keyterm=hello+world&keyterm=good%20bye"
        "&extra=team:core&extra=run:a+b&not_a_deepgram_option=1&diarize=true"
    )
    assert options.encoding is Encoding.LINEAR16
    assert options.sample_rate == 8000
    assert options.channels == 2
    assert options.multichannel
    assert options.output_channels == 2
    assert options.interim_results
    assert not options.punctuate
    assert options.smart_format
    assert options.formatted
    assert options.endpointing_ms == 300
    assert options.utterance_end_ms == 1000
    assert options.vad_events
    assert options.extra == (("team", "core"), ("run", "a b"))
    assert options.ignored == ("keyterm",)
    assert options.diarize


@pytest.mark.parametrize(
    ("query", "endpointing"),
    [
        ("endpointing=false", None),
        ("endpointing=FALSE", None),
        ("endpointing=true", 10),
        ("endpointing=0", 0),
    ],
)
def test_endpointing_values(query: str, endpointing: int | None) -> None:
    """Endpointing is milliseconds, or false to disable it."""
    assert protocol.parse_options(query).endpointing_ms == endpointing


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("encoding=wav2", "encoding"),
        ("encoding=linear16", "sample_rate is required"),
        ("encoding=mulaw&sample_rate=8k", "sample_rate"),
        ("encoding=linear16&sample_rate=0", "sample_rate"),
        ("endpointing=soon", "endpointing"),
        ("endpointing=-5", "endpointing"),
        ("interim_results=yes", "interim_results"),
        ("channels=two", "channels"),
        ("channels=21", "channels"),
        ("utterance_end_ms=1s", "utterance_end_ms"),
        ("extra=novalue", "extra"),
        ("encoding=amr-nb&sample_rate=8000", "not supported"),
        ("encoding=linear16&sample_rate=1", "8000 to 192000"),
        ("encoding=linear16&sample_rate=7999", "8000 to 192000"),
        ("encoding=linear16&sample_rate=192001", "8000 to 192000"),
        ("model=no-such-model", "No such model"),
        ("model=nova-4", "No such model"),
        ("model=nova-2-nonsense", "No such model"),
    ],
)
def test_invalid_options_are_rejected(query: str, fragment: str) -> None:
    """Options Deepgram answers with HTTP 400 raise OptionsError naming the problem."""
    with pytest.raises(OptionsError, match=fragment):
        protocol.parse_options(query)


@pytest.mark.parametrize(
    "model",
    [
        "nova-3",
        "nova-3-general",
        "nova-2-phonecall",
        "NOVA-2-Meeting",
        "nova",
        "enhanced-finance",
        "base",
        "general",
        "phonecall",
        "whisper",
        "whisper-tiny",
    ],
)
def test_deepgram_model_names_are_accepted(model: str) -> None:
    """Every Deepgram model name runs the local model; the name is kept as given."""
    assert protocol.parse_options(f"model={model}").model == model


@pytest.mark.parametrize(
    ("query", "diarize"),
    [("", False), ("diarize=true", True), ("diarize=false", False), ("diarize_model=latest", True)],
)
def test_diarize_labels_every_word_speaker_0(query: str, diarize: bool) -> None:
    """With diarization asked for, every word carries speaker 0 (no diarization model here)."""
    options = protocol.parse_options(query)
    message = protocol.results_message(_window(*WORDS), options=options, request_id="r", model=MODEL)
    words = message["channel"]["alternatives"][0]["words"]
    assert [w.get("speaker") for w in words] == ([0] * len(words) if diarize else [None] * len(words))


@pytest.mark.parametrize("is_final", [False, True])
def test_formatted_result_opens_with_a_capital(is_final: bool) -> None:
    """The decoder may write a window's first word in lower case after some context; interim
    and final then disagree. Every formatted result opens with a capital, as Deepgram's do."""
    words = [Word("ask", 0.0, 0.3, 0.9), Word("not", 0.3, 0.6, 0.9)]
    options = protocol.parse_options("smart_format=true")
    message = protocol.results_message(
        _window(*words, is_final=is_final), options=options, request_id="r", model=MODEL
    )
    alternative = message["channel"]["alternatives"][0]
    assert alternative["transcript"] == "Ask not"
    assert [w["word"] for w in alternative["words"]] == ["ask", "not"]


def test_handshake_error_body() -> None:
    """Refusals carry Deepgram's legacy JSON body with the request id."""
    error = protocol.bad_request("Invalid encoding.")
    assert error.status is HTTPStatus.BAD_REQUEST
    assert json.loads(error.body("rid")) == {
        "err_code": "Bad Request",
        "err_msg": "Invalid encoding.",
        "request_id": "rid",
    }
    busy = protocol.too_many_requests(3)
    assert busy.status is HTTPStatus.TOO_MANY_REQUESTS
    assert busy.err_code == "TOO_MANY_REQUESTS"
    assert protocol.INVALID_AUTH.status is HTTPStatus.UNAUTHORIZED


@pytest.mark.parametrize(
    ("authorization", "subprotocols", "scheme", "secret"),
    [
        ("Token abc", [], "token", "abc"),
        ("token abc", [], "token", "abc"),
        ("Bearer jwt.x.y", [], "bearer", "jwt.x.y"),
        (None, ["token", "abc"], "token", "abc"),
        (None, ["bearer", "jwt"], "bearer", "jwt"),
        ("Basic Zm9v", [], None, None),
        (None, ["chat"], None, None),
        (None, [], None, None),
    ],
)
def test_credentials(
    authorization: str | None, subprotocols: list[str], scheme: str | None, secret: str | None
) -> None:
    """Keys come from Token/Bearer headers (any case) or the browser subprotocol pair."""
    found = protocol.parse_credentials(authorization, subprotocols)
    if scheme is None:
        assert found is None
    else:
        assert found is not None
        assert (found.scheme.value, found.secret) == (scheme, secret)
        assert found.secret not in repr(found)


def test_authorization_decision() -> None:
    """No configured key admits everyone; a configured key must match exactly."""
    token = protocol.parse_credentials("Token right", [])
    assert protocol.is_authorized(None, None)
    assert protocol.is_authorized("right", token)
    assert not protocol.is_authorized("other", token)
    assert not protocol.is_authorized("right", None)


def test_subprotocol_echo() -> None:
    """Only the scheme is echoed, never the key."""
    assert protocol.select_subprotocol(["token", "secret"]) == "token"
    assert protocol.select_subprotocol(["Bearer", "jwt"]) == "Bearer"
    assert protocol.select_subprotocol(["chat"]) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"KeepAlive"}', protocol.KeepAlive()),
        ('{ "type" : "CloseStream" }', protocol.CloseStream()),
        ('{"type": "Finalize"}', protocol.Finalize()),
        ('{"type": "Finalize", "channel": 1}', protocol.Finalize(1)),
        ('{"type": "Finalize", "channel": true}', protocol.Finalize()),
        ('{"type":"Configure","keyterms":["a"]}', protocol.Configure(has_keyterms=True)),
        ("not json", protocol.UnknownMessage("not json")),
        ("[1]", protocol.UnknownMessage("[1]")),
        ('{"type":"Dance"}', protocol.UnknownMessage('{"type":"Dance"}')),
    ],
)
def test_control_messages(text: str, expected: protocol.ControlMessage) -> None:
    """Control frames are parsed as JSON, whatever their whitespace; unknown ones are reported."""
    assert protocol.parse_control(text) == expected


def _window(*words: Word, is_final: bool = True) -> ResultWindow:
    return ResultWindow(
        channel=0,
        channels=1,
        start=0.74,
        end=3.82,
        is_final=is_final,
        speech_final=True,
        from_finalize=False,
        words=words,
    )


WORDS = (Word("Testing.", 1.22, 1.62, 0.48), Word("123.", 1.62, 2.12, 0.93))


def _shape(value: Any) -> Any:
    """Keys (recursively) and JSON types, values ignored."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__ if not isinstance(value, int | float) or isinstance(value, bool) else "number"


def test_results_shape_matches_recorded_deepgram_final() -> None:
    """A punctuated final has exactly the fields and nesting of a real Deepgram final."""
    recorded = json.loads((FIXTURES / "nova2_testing-websocket_final-response.json").read_text())
    options = protocol.parse_options("punctuate=true")
    ours = protocol.results_message(_window(*WORDS), options=options, request_id="r", model=MODEL)
    assert _shape(ours) == _shape(recorded)
    assert ours["channel"]["alternatives"][0]["transcript"] == "Testing. 123."
    assert [w["word"] for w in ours["channel"]["alternatives"][0]["words"]] == ["testing", "123"]


def test_results_key_order_matches_the_wire() -> None:
    """Top-level keys come in the order Deepgram sends them."""
    message = protocol.results_message(
        _window(*WORDS), options=protocol.parse_options(""), request_id="r", model=MODEL
    )
    assert list(message) == [
        "type",
        "channel_index",
        "duration",
        "start",
        "is_final",
        "speech_final",
        "channel",
        "metadata",
        "from_finalize",
    ]
    assert message["duration"] == pytest.approx(3.08)


def test_unformatted_results_have_no_punctuated_word() -> None:
    """Without punctuate/smart_format the transcript is lowercase words and no punctuated_word."""
    message = protocol.results_message(
        _window(*WORDS), options=protocol.parse_options(""), request_id="r", model=MODEL
    )
    alternative = message["channel"]["alternatives"][0]
    assert alternative["transcript"] == "testing 123"
    assert all("punctuated_word" not in w for w in alternative["words"])


def test_empty_results_and_extra() -> None:
    """Silence gives an empty transcript with confidence 0, and extra is echoed in metadata."""
    options = protocol.parse_options("extra=k:v")
    message = protocol.results_message(_window(is_final=False), options=options, request_id="r", model=MODEL)
    alternative = message["channel"]["alternatives"][0]
    assert alternative == {"transcript": "", "confidence": 0.0, "words": []}
    assert message["metadata"]["extra"] == {"k": "v"}


def test_official_sdk_parses_results() -> None:
    """deepgram-sdk's own model reads every field of our Results."""
    options = protocol.parse_options("smart_format=true")
    message = protocol.results_message(_window(*WORDS), options=options, request_id="r", model=MODEL)
    parsed = ListenV1Results.model_validate(message)
    assert parsed.channel.alternatives[0].words[0].punctuated_word == "Testing."
    assert parsed.metadata.model_info.arch == "whisper"
    assert parsed.from_finalize is False


@pytest.mark.parametrize("duration", [0.0, 4.5])
def test_metadata(duration: float) -> None:
    """Metadata lists models only once audio was processed, and the SDK parses it."""
    created = datetime(2026, 1, 2, 3, 4, 5, 678_900, tzinfo=UTC)
    message = protocol.metadata_message(
        options=protocol.parse_options(""),
        request_id="r",
        created=created,
        duration_s=duration,
        model=MODEL,
    )
    assert message["created"] == "2026-01-02T03:04:05.678Z"
    assert message["transaction_key"] == "deprecated"
    assert ("models" in message) is (duration > 0)
    ListenV1Metadata.model_validate(message)


def test_events() -> None:
    """UtteranceEnd and SpeechStarted have Deepgram's fields."""
    assert protocol.utterance_end_message(0, 1, 2.395) == {
        "type": "UtteranceEnd",
        "channel": [0, 1],
        "last_word_end": 2.395,
    }
    assert protocol.speech_started_message(1, 2, 9.54) == {
        "type": "SpeechStarted",
        "channel": [1, 2],
        "timestamp": 9.54,
    }


@pytest.mark.parametrize(
    ("text", "word"), [("Hello,", "hello"), ("“Quoted”", "quoted"), ("don't", "don't"), ("...", "...")]
)
def test_plain_word(text: str, word: str) -> None:
    """Deepgram's word is lowercase without surrounding punctuation."""
    assert protocol.plain_word(text) == word
