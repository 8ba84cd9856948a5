"""Upstream messages are checked before use: a wrong-shaped or absurd message is skipped, counted
and logged once, and the rest of the transcript arrives (over real sockets, scripted stand-in)."""

from __future__ import annotations

import json
import logging
import resource
from typing import Any

import pytest
from transcribe.v1 import transcribe_pb2 as pb

from tests.integration.conftest import LINEAR16, collect, requests, running_gateway, words
from tests.support.standin import DeepgramStandIn, Plan, counter_audio


def result(**overrides: Any) -> str:
    """A final Results message for the first block, with top-level keys replaced."""
    data: dict[str, Any] = {
        "type": "Results",
        "channel_index": [0, 1],
        "start": 0.0,
        "duration": 0.08,
        "is_final": True,
        "channel": {
            "alternatives": [{"transcript": "bogus", "words": [{"word": "bogus", "start": 0, "end": 0.08}]}]
        },
    }
    data.update(overrides)
    return json.dumps(data)


INVALID = {
    "wrong-shaped channel": (result(channel="oops"), "shape"),
    "words as a number": (result(channel={"alternatives": [{"words": 5}]}), "shape"),
    "words as a string": (result(channel={"alternatives": [{"words": "abc"}]}), "shape"),
    "a string duration": (result(duration="inf"), "shape"),
    "a start past the audio": (result(start=1e300), "time"),
    "a huge channel index": (result(channel_index=[100_000_000, 100_000_001]), "channel"),
    "a speech start past the audio": ('{"type":"SpeechStarted","channel":[0,1],"timestamp":1e300}', "time"),
}


def invalid_count(gw: Any, kind: str) -> float:
    value = gw.server.metrics.registry.get_sample_value(
        "gateway_upstream_invalid_messages_total", {"kind": kind}
    )
    return float(value or 0.0)


@pytest.mark.parametrize("name", list(INVALID))
async def test_an_invalid_upstream_message_is_skipped_and_the_transcript_completes(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The invalid message (sent when the connection opens, and again after CloseStream) is
    skipped, counted by kind and logged once; every word of the audio arrives and the call ends OK."""
    text, kind = INVALID[name]
    plan = Plan(on_open=[text], on_close_stream=[text, text])
    caplog.set_level(logging.DEBUG, logger="gateway")
    async with DeepgramStandIn([plan]) as standin:
        async with running_gateway(standin.url) as gw:
            responses = await collect(gw.stub, requests(LINEAR16, *(counter_audio(k, 1) for k in range(6))))
            assert invalid_count(gw, kind) == 3
    assert [w.word for w in words(responses)] == [f"w{k}" for k in range(6)]
    assert "bogus" not in str(responses)
    assert responses[-1].HasField("summary")
    warnings = [r for r in caplog.records if "invalid upstream message" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


async def test_a_huge_channel_index_allocates_nothing() -> None:
    """`channel_index: [100000000, ...]` used to grow a per-channel list to 10^8 entries."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    text = result(channel_index=[100_000_000, 100_000_001])
    async with DeepgramStandIn([Plan(on_open=[text] * 5)]) as standin:
        async with running_gateway(standin.url) as gw:
            responses = await collect(gw.stub, requests(LINEAR16, counter_audio(0, 2)))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert [w.word for w in words(responses)] == ["w0", "w1"]
    assert grown_kib < 100 * 1024, f"peak memory grew by {grown_kib} KiB"


async def test_a_channel_of_a_multichannel_session_is_accepted() -> None:
    """Channel indexes below the session's channel count are used as before."""
    config = pb.StreamingConfig(
        encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000, channels=2, multichannel=True
    )
    second = result(channel_index=[1, 2], start=0.0, duration=0.05)
    async with DeepgramStandIn([Plan(transcribe=False, on_close_stream=[second])]) as standin:
        async with running_gateway(standin.url) as gw:
            responses = await collect(gw.stub, requests(config, b"\0\0" * 3200))
            assert invalid_count(gw, "channel") == 0
    [final] = [r.result for r in responses if r.HasField("result")]
    assert (final.channel_index, final.alternatives[0].transcript) == (1, "bogus")
