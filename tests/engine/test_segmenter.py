"""Endpointing and interim scheduling, driven by synthetic VAD probabilities (32 ms windows)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transcribe_engine.protocol import Word
from transcribe_engine.segmenter import (
    Event,
    Segmenter,
    SegmenterSettings,
    SpeechStarted,
    UtteranceEnd,
    Window,
)
from transcribe_engine.stream import place_words, repeated_prefix

WINDOW_S = 0.032


def windows(seconds: float, probability: float) -> list[float]:
    return [probability] * round(seconds / WINDOW_S)


def finals(events: list[Event]) -> list[Window]:
    return [e for e in events if isinstance(e, Window) and e.is_final]


def interims(events: list[Event]) -> list[Window]:
    return [e for e in events if isinstance(e, Window) and not e.is_final]


def test_endpoint_after_silence() -> None:
    """Speech then enough silence gives SpeechStarted and one speech_final window."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=500, interim_period_s=None))
    events = segmenter.advance(windows(1.0, 0.05) + windows(2.0, 0.9) + windows(0.6, 0.05))
    started = [e for e in events if isinstance(e, SpeechStarted)]
    assert [round(e.timestamp, 2) for e in started] == [pytest.approx(0.99, abs=0.04)]
    (final,) = finals(events)
    assert final.speech_final
    assert final.has_speech
    assert final.start == 0.0
    assert final.end == pytest.approx(3.5, abs=0.04)
    # Decoding starts a little before the onset, not at the start of the silent lead-in.
    assert 0.6 < final.audio_start < 1.0
    assert segmenter.cursor == final.end


def test_short_endpointing_is_raised_to_the_engine_minimum() -> None:
    """Deepgram's 10 ms default would cut inside phrases; the engine waits its minimum."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=10, min_endpointing_ms=300, interim_period_s=None))
    events = segmenter.advance(windows(1.0, 0.9) + windows(0.2, 0.05))
    assert finals(events) == []
    (final,) = finals(segmenter.advance(windows(0.15, 0.05)))
    assert final.speech_final


def test_no_endpointing_keeps_the_window_open() -> None:
    """endpointing=false: pauses do not close the window; Finalize does."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=None, interim_period_s=None))
    events = segmenter.advance(windows(1.0, 0.9) + windows(1.0, 0.05) + windows(1.0, 0.9))
    assert finals(events) == []
    window = segmenter.finalize(total_samples=round(3.01 * 16000))
    assert window is not None
    assert window.from_finalize
    assert window.is_final
    assert window.end == pytest.approx(3.01)
    assert segmenter.finalize(total_samples=round(3.01 * 16000)) is None


def test_interims_every_period_and_empty_in_silence() -> None:
    """Interims come once per period of audio; in silence they need no decoding."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=300, interim_period_s=1.0))
    silent = interims(segmenter.advance(windows(2.05, 0.05)))
    assert len(silent) == 2
    assert not any(w.has_speech for w in silent)
    speaking = interims(segmenter.advance(windows(3.1, 0.9)))
    assert len(speaking) == 3
    assert all(w.has_speech for w in speaking)
    assert all(w.start == 0.0 for w in speaking)


def test_long_monologue_is_cut_at_a_short_pause() -> None:
    """Past the soft cap a 150 ms pause closes the window without speech_final."""
    segmenter = Segmenter(
        SegmenterSettings(endpointing_ms=800, interim_period_s=None, soft_max_segment_s=5.0)
    )
    events = segmenter.advance(windows(6.0, 0.9) + windows(0.2, 0.05) + windows(1.0, 0.9))
    (cut,) = finals(events)
    assert not cut.speech_final
    assert cut.end == pytest.approx(6.16, abs=0.04)


def test_hard_cap_cuts_at_the_quietest_point() -> None:
    """Speech with no pause is cut at the hard cap, at the lowest recent probability."""
    segmenter = Segmenter(
        SegmenterSettings(
            endpointing_ms=300, interim_period_s=None, soft_max_segment_s=5.0, hard_max_segment_s=8.0
        )
    )
    events = segmenter.advance([*windows(7.0, 0.9), 0.4, *windows(2.0, 0.9)])
    (cut,) = finals(events)
    assert not cut.speech_final
    assert cut.end == pytest.approx(7.0, abs=0.05)


def test_long_silence_gets_an_empty_final() -> None:
    """A silent window is closed after a few seconds so clients can commit it."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=300, interim_period_s=None))
    (final,) = finals(segmenter.advance(windows(5.1, 0.05)))
    assert not final.has_speech
    assert not final.speech_final


def test_utterance_end_after_the_gap() -> None:
    """UtteranceEnd comes once the gap after the last final word reaches utterance_end_ms."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=300, interim_period_s=1.0, utterance_end_ms=1000))
    segmenter.advance(windows(1.0, 0.9) + windows(0.4, 0.05))
    assert segmenter.note_final_words(last_word_end=0.95) == []
    events = segmenter.advance(windows(0.7, 0.05))
    assert [e for e in events if isinstance(e, UtteranceEnd)] == [UtteranceEnd(0.95)]
    assert not [e for e in segmenter.advance(windows(2.0, 0.05)) if isinstance(e, UtteranceEnd)]


def test_no_utterance_end_when_speech_resumes_quickly() -> None:
    """A gap shorter than utterance_end_ms produces no UtteranceEnd."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=300, interim_period_s=1.0, utterance_end_ms=1000))
    segmenter.advance(windows(1.0, 0.9) + windows(0.5, 0.05) + windows(1.0, 0.9))
    events = segmenter.note_final_words(last_word_end=0.98)
    events += segmenter.advance(windows(0.3, 0.9))
    assert not [e for e in events if isinstance(e, UtteranceEnd)]


def test_first_interim_waits_for_enough_speech_then_comes_at_once() -> None:
    """An interim is held until there is enough speech, then sent without waiting a period."""
    segmenter = Segmenter(
        SegmenterSettings(endpointing_ms=300, interim_period_s=1.0, min_interim_speech_s=0.5)
    )
    early = interims(segmenter.advance(windows(0.8, 0.05) + windows(0.3, 0.9)))
    assert [w.has_speech for w in early] == []  # due at 1.024 s, but only ~0.3 s of speech
    (first,) = interims(segmenter.advance(windows(0.25, 0.9)))
    assert first.has_speech
    assert first.speech_s >= 0.5
    assert first.end == pytest.approx(1.312, abs=0.04)


@pytest.mark.parametrize("onset_s", [0.1, 0.45, 0.7, 0.95, 1.3, 2.6])
def test_first_interim_of_speech_does_not_wait_for_the_period(onset_s: float) -> None:
    """Whatever the phase of the silent window's empty interims, the first interim with speech
    comes once the default minimum of speech (0.3 s) is heard; the next one comes where the
    cadence's first would have on average (a period and 0.5 s later), then once a period."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=300, interim_period_s=1.0))
    assert SegmenterSettings(endpointing_ms=300).min_interim_speech_s == 0.3
    silent = interims(segmenter.advance(windows(onset_s, 0.05)))
    assert not any(w.has_speech for w in silent)
    onset = len(windows(onset_s, 0.05)) * WINDOW_S
    speaking = interims(segmenter.advance(windows(3.5, 0.9)))
    first, *later = speaking
    assert first.has_speech
    assert first.speech_s == pytest.approx(0.3, abs=WINDOW_S)
    assert first.end - onset == pytest.approx(0.3, abs=WINDOW_S)
    assert [round(w.end - first.end, 2) for w in later] == [
        pytest.approx(1.5, abs=0.06),
        pytest.approx(2.5, abs=0.06),
    ]


def test_first_interim_after_an_endpoint_comes_early_too() -> None:
    """After an endpoint the next window's first interim follows its own speech, not the
    period counted from the endpoint."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=300, interim_period_s=1.0))
    events = segmenter.advance(windows(1.5, 0.9) + windows(0.35, 0.05))
    (final,) = finals(events)
    second = interims(segmenter.advance(windows(0.1, 0.05) + windows(0.4, 0.9)))
    assert [w.has_speech for w in second] == [True]
    assert second[0].segment_id == final.segment_id + 1
    assert second[0].end - final.end == pytest.approx(0.1 + 0.3, abs=0.07)


def test_an_early_interim_without_words_is_tried_again_soon() -> None:
    """0.3 s of speech may be too little of the first word for the decoder: after an empty
    early interim the next comes 0.3 s of speech later, not at the cadence."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=300, interim_period_s=1.0))
    (early,) = interims(segmenter.advance(windows(0.5, 0.05) + windows(0.35, 0.9)))
    assert early.speech_s == pytest.approx(0.3, abs=WINDOW_S)
    assert interims(segmenter.advance(windows(0.1, 0.9))) == []  # the decode is under way
    segmenter.note_empty_interim(early)
    (retry,) = interims(segmenter.advance(windows(0.3, 0.9)))
    assert retry.speech_s == pytest.approx(early.speech_s + 0.3, abs=WINDOW_S)
    # With words (no note), the cadence follows; a stale note for a closed window is ignored.
    assert interims(segmenter.advance(windows(1.0, 0.9))) == []
    (final,) = finals(segmenter.advance(windows(0.4, 0.05)))
    segmenter.note_empty_interim(retry)
    assert interims(segmenter.advance(windows(0.5, 0.9)))[0].speech_s == pytest.approx(0.3, abs=WINDOW_S)
    assert final.is_final


# ---- words at segment boundaries (stream.place_words and friends, pure) ----


@pytest.mark.parametrize(
    ("context", "reported", "repeated"),
    [
        (["not"], ["ask", "not"], 1),
        (["We"], ["seatbelts."], 0),
        (["seat", "belts"], ["seatbelts."], 2),
        (["him", "in", "the", "back"], ["slap", "in", "the", "back"], 4),
        (["Americans."], ["Americans."], 1),
        ([], ["a"], 0),
        (["what"], ["ask", "not"], 0),
    ],
)
def test_repeated_prefix(context: list[str], reported: list[str], repeated: int) -> None:
    assert repeated_prefix(context, reported) == repeated


def _window(start: float, end: float) -> Window:
    return Window(segment_id=1, start=start, end=end, audio_start=start, has_speech=True, is_final=True)


def test_a_word_the_previous_final_missed_is_kept() -> None:
    """The diarization clip: "seatbelts" ended the previous final; the decoder smears "We"
    into the context. It is new (not a re-hearing, ends after what was reported): kept."""
    reported = [Word("your", 14.94, 15.16, 1.0), Word("seatbelts.", 15.16, 15.96, 1.0)]
    decoded = [Word("We", 0.0, 0.82, 1.0), Word("are", 0.82, 1.5, 1.0), Word("expecting", 1.5, 1.9, 1.0)]
    placed = place_words(decoded, _window(16.19, 18.56), 15.16, reported=reported)
    assert [w.text for w in placed] == ["We", "are", "expecting"]
    assert placed[0].start == 16.19  # clamped into its window


def test_reheard_context_words_are_dropped() -> None:
    reported = [Word("fellow", 1.4, 1.74, 1.0), Word("Americans.", 1.74, 2.16, 1.0)]
    decoded = [Word("Americans", 0.0, 0.5, 1.0), Word("ask", 0.9, 1.5, 1.0)]
    placed = place_words(decoded, _window(2.56, 4.67), 1.74, reported=reported)
    assert [w.text for w in placed] == ["ask"]


def test_without_reported_words_the_context_is_dropped() -> None:
    """Nothing reported to compare with (start, or after silence): context words stay out."""
    decoded = [Word("Thank", 0.0, 0.3, 1.0), Word("you", 1.2, 1.5, 1.0)]
    assert [w.text for w in place_words(decoded, _window(1.0, 2.0), 0.0)] == ["you"]


def test_no_interim_without_new_speech() -> None:
    """An interim due after the speech stopped would decode the same speech again: skipped.
    (endpointing=false keeps the window open through the pause.)"""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=None, interim_period_s=1.0))
    speaking = interims(segmenter.advance(windows(2.1, 0.9)))
    assert len(speaking) == 2
    # One more interim hears the speech's last 50 ms; after it only silence is new.
    (tail,) = interims(segmenter.advance(windows(3.0, 0.05)))
    assert tail.speech_s == pytest.approx(2.1, abs=0.04)
    assert interims(segmenter.advance(windows(2.0, 0.05))) == []
    (resumed,) = interims(segmenter.advance(windows(1.0, 0.9)))
    assert resumed.has_speech


def test_decode_context_stays_after_an_endpoint() -> None:
    """After an endpoint the next window's decode may not hear audio before it: context from
    there started inside the previous window's last word (JFK's "not | what" became "like")."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=300, interim_period_s=None))
    first, second = finals(
        segmenter.advance(windows(1.0, 0.9) + windows(0.4, 0.05) + windows(0.1, 0.05))
        + segmenter.advance(windows(0.05, 0.9) + windows(1.0, 0.9) + windows(0.4, 0.05))
    )
    assert first.context_start == 0.0
    assert second.context_start == second.start == first.end
    assert second.audio_start == second.start  # speech resumed within the pre-roll


def test_decode_context_reaches_back_after_a_cut_inside_speech() -> None:
    """A hard cap (or Finalize) may cut inside a word: the next decode hears a second before."""
    segmenter = Segmenter(
        SegmenterSettings(
            endpointing_ms=300, interim_period_s=None, soft_max_segment_s=5.0, hard_max_segment_s=8.0
        )
    )
    segmenter.advance([*windows(7.0, 0.9), 0.4, *windows(2.0, 0.9)])
    cut_at = segmenter.cursor
    window = segmenter.finalize(total_samples=round(9.1 * 16000))
    assert window is not None
    assert window.context_start == pytest.approx(cut_at - 1.0, abs=0.001)
    after_finalize = segmenter.finalize(total_samples=round(9.5 * 16000))
    assert after_finalize is not None
    assert after_finalize.context_start == pytest.approx(window.end - 1.0, abs=0.001)


@given(st.lists(st.sampled_from([0.05, 0.4, 0.9]), max_size=400))
@settings(max_examples=150, deadline=None)
def test_interims_with_speech_keep_their_bar_and_cadence(probabilities: list[float]) -> None:
    """Whatever the VAD says: an interim with speech hears at least the minimum of speech and
    more speech than the window's previous one; only a window's first one may come before the
    period."""
    segmenter = Segmenter(SegmenterSettings(endpointing_ms=300, interim_period_s=1.0))
    minimum = SegmenterSettings(endpointing_ms=300).min_interim_speech_s
    last: dict[int, Window] = {}
    for event in segmenter.advance(probabilities):
        if not isinstance(event, Window) or event.is_final or event.speech_s == 0:
            continue
        assert event.speech_s >= minimum - 1e-9
        previous = last.get(event.segment_id)
        if previous is not None:
            assert event.speech_s > previous.speech_s
            assert event.end - previous.end >= 1.0 - 1e-9
        last[event.segment_id] = event
