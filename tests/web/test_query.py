"""``/v1/listen`` query -> StreamingConfig (gateway.web.query), and back (gateway.protocol.deepgram)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transcribe.v1 import transcribe_pb2 as pb

from gateway.protocol import deepgram
from gateway.web.query import QueryError, parse_query


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", pb.StreamingConfig()),
        ("model=nova-3&language=en-US", pb.StreamingConfig(model="nova-3", language="en-US")),
        (
            "encoding=linear16&sample_rate=16000",
            pb.StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000),
        ),
        (
            "encoding=LINEAR16&sample_rate=16000&channels=2&multichannel=true",
            pb.StreamingConfig(
                encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000, channels=2, multichannel=True
            ),
        ),
        # Containerised audio: Deepgram ignores sample_rate and channels without an encoding.
        ("sample_rate=48000&channels=2", pb.StreamingConfig()),
        (
            "interim_results=true&punctuate=false&smart_format=True",
            pb.StreamingConfig(interim_results=True, punctuate=False, smart_format=True),
        ),
        ("endpointing=300", pb.StreamingConfig(endpointing_ms=300)),
        ("endpointing=false", pb.StreamingConfig(endpointing_disabled=True)),
        ("endpointing=true", pb.StreamingConfig()),
        ("endpointing=300&endpointing=false", pb.StreamingConfig(endpointing_disabled=True)),
        (
            "interim_results=true&utterance_end_ms=1000",
            pb.StreamingConfig(interim_results=True, utterance_end_ms=1000),
        ),
        (
            "keyterm=Deepgram&keyterm=customer+service",
            pb.StreamingConfig(keyterms=["Deepgram", "customer service"]),
        ),
        (
            "keywords=snuffleupagus:2&keywords=plain&keywords=a:b",
            pb.StreamingConfig(
                keywords=[
                    pb.Keyword(term="snuffleupagus", intensifier=2.0),
                    pb.Keyword(term="plain"),
                    pb.Keyword(term="a:b"),
                ]
            ),
        ),
        (
            "replace=hello:howdy&replace=gone:",
            pb.StreamingConfig(
                replace=[pb.Replacement(find="hello", replace_with="howdy"), pb.Replacement(find="gone")]
            ),
        ),
        ("extra=team:web&extra=url:http://x", pb.StreamingConfig(extra={"team": "web", "url": "http://x"})),
        ("redact=pci&redact=ssn", pb.StreamingConfig(redact=[pb.REDACTION_PCI, pb.REDACTION_SSN])),
        ("tag=a&tag=b&search=cat", pb.StreamingConfig(tags=["a", "b"], search=["cat"])),
        (
            "alternatives=2&tier=nova&callback=https://x/cb&callback_method=put",
            pb.StreamingConfig(alternatives=2, tier="nova", callback="https://x/cb", callback_method="put"),
        ),
        # Parameters the gateway does not model travel on as they are.
        (
            "model=nova-3&topics=true&x-custom=1",
            pb.StreamingConfig(model="nova-3", upstream_params={"topics": "true", "x-custom": "1"}),
        ),
        # The gateway's own parameter never goes upstream.
        ("gateway_events=true", pb.StreamingConfig()),
    ],
)
def test_query_becomes_config(query: str, expected: pb.StreamingConfig) -> None:
    """Each query form becomes the StreamingConfig that means the same."""
    assert parse_query(query).config == expected


@pytest.mark.parametrize(
    ("query", "events"), [("", False), ("gateway_events=true", True), ("gateway_events=false", False)]
)
def test_gateway_events_is_an_opt_in(query: str, events: bool) -> None:
    """GatewayEvent messages only when asked for."""
    assert parse_query(query).gateway_events is events


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("encoding=linear16", "sample_rate"),
        ("encoding=wav&sample_rate=16000", "encoding"),
        ("encoding=linear16&sample_rate=abc", "sample_rate"),
        ("encoding=linear16&sample_rate=-1", "sample_rate"),
        ("encoding=linear16&sample_rate=999999999", "sample_rate"),
        ("encoding=amr-nb&sample_rate=16000", "sample_rate"),
        ("encoding=linear16&sample_rate=16000&channels=21", "channels"),
        ("interim_results=yes", "interim_results"),
        ("endpointing=soon", "endpointing"),
        ("endpointing=0", "endpointing"),
        ("utterance_end_ms=1000", "utterance_end_ms"),
        ("redact=everything", "redact"),
        ("extra=novalue", "extra"),
        ("replace=nocolon", "replace"),
        ("keyterm=", "keyterm[0]"),
        ("keywords=x:nan", "keywords[0].intensifier"),
        ("callback_method=PATCH", "callback_method"),
        ("bad%20name=1", "upstream_params"),
        ("gateway_events=maybe", "gateway_events"),
    ],
)
def test_bad_query_names_the_parameter(query: str, param: str) -> None:
    """A value Deepgram would refuse: a QueryError naming the parameter as the user wrote it."""
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert info.value.param == param
    assert str(info.value).startswith(f"{param}: ")


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)
_name = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in deepgram.MODELLED_PARAMS and n != "gateway_events"
)


@st.composite
def configs(draw: st.DrawFn) -> pb.StreamingConfig:
    config = pb.StreamingConfig(
        model=draw(st.sampled_from(["", "nova-3", "nova-2-general"])),
        language=draw(st.sampled_from(["", "en", "en-US", "multi"])),
    )
    if draw(st.booleans()):
        config.encoding = draw(st.sampled_from(sorted(set(deepgram.ENCODING_NAMES) - {6, 7})))  # type: ignore[assignment]
        config.sample_rate = draw(st.integers(deepgram.MIN_SAMPLE_RATE, deepgram.MAX_SAMPLE_RATE))
        config.channels = draw(st.integers(0, deepgram.MAX_CHANNELS))
    for name in ("multichannel", "punctuate", "smart_format", "vad_events", "diarize", "numerals"):
        value = draw(st.none() | st.booleans())
        if value is not None:
            setattr(config, name, value)
    config.interim_results = draw(st.booleans())
    endpointing = draw(st.none() | st.just(False) | st.integers(1, deepgram.MAX_ENDPOINTING_MS))
    if endpointing is False:
        config.endpointing_disabled = True
    elif endpointing is not None:
        config.endpointing_ms = endpointing
    if config.interim_results and draw(st.booleans()):
        config.utterance_end_ms = draw(st.integers(1, deepgram.MAX_ENDPOINTING_MS))
    config.keyterms.extend(draw(st.lists(_text.filter(str.strip), max_size=3)))
    config.search.extend(draw(st.lists(_text.filter(str.strip), max_size=2)))
    config.tags.extend(draw(st.lists(_text.filter(str.strip), max_size=2)))
    for term in draw(st.lists(_text.filter(lambda t: t.strip() and ":" not in t), max_size=2)):
        boost = draw(st.none() | st.sampled_from([1.0, 2.5, -3.0, 10.0]))
        config.keywords.append(
            pb.Keyword(term=term) if boost is None else pb.Keyword(term=term, intensifier=boost)
        )
    for find in draw(st.lists(_text.filter(lambda t: ":" not in t), max_size=2)):
        config.replace.append(pb.Replacement(find=find, replace_with=draw(_text)))
    config.redact.extend(draw(st.lists(st.sampled_from(sorted(deepgram.REDACTION_NAMES)), max_size=2)))  # type: ignore[arg-type]
    config.extra.update(draw(st.dictionaries(_text.filter(lambda t: ":" not in t), _text, max_size=2)))
    config.upstream_params.update(draw(st.dictionaries(_name, _text, max_size=2)))
    return config


@given(configs())
def test_round_trip_through_the_query(config: pb.StreamingConfig) -> None:
    """config -> Deepgram query (what the gateway sends upstream) -> config gives it back."""
    deepgram.validate(config)
    assert parse_query(urlencode(deepgram.query_params(config))).config == config
