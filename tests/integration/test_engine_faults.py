"""The whole path with the real engine behind a connection-cutting proxy.

A minute of the project's own speech (tests/data/speech) is streamed through the gateway to the
embedded engine while the proxy kills the upstream connection again and again; the transcript
must have the same words as a run without faults, with times that never go backwards.
"""

from __future__ import annotations

import pytest
from transcribe.v1 import transcribe_pb2 as pb

from tests.support.faults import SPEECH_MINUTE, run_with_cuts, speech_minute

pytestmark = [pytest.mark.engine, pytest.mark.slow]


async def test_five_cuts_lose_and_repeat_no_word() -> None:
    """Five or more upstream drops during a 60 s stream: same words as without faults."""
    pcm = speech_minute()
    assert len(pcm) / 32000 >= 60
    clean = await run_with_cuts(pcm, cut_every_s=None)
    faulty = await run_with_cuts(pcm, cut_every_s=SPEECH_MINUTE.cut_every_s)
    assert faulty.cuts >= 5
    assert faulty.reconnects >= 5
    assert clean.words, "the clean run transcribed nothing"
    assert faulty.words == clean.words
    starts = [w.start_seconds for w in faulty.word_protos]
    assert starts == sorted(starts)
    result_starts = [r.start_seconds for r in faulty.results]
    assert result_starts == sorted(result_starts)
    assert faulty.summary.reconnect_count == faulty.reconnects
    assert isinstance(faulty.summary, pb.SessionSummary)
