"""One time base across upstream connections: rebase, commit, de-duplicate."""

from __future__ import annotations

from transcribe.v1 import transcribe_pb2 as pb

from gateway.protocol.timeline import Timeline


def result(
    start: float, end: float, words: list[tuple[str, float, float]], *, final: bool = True, channel: int = 0
) -> pb.Result:
    return pb.Result(
        channel_index=channel,
        channel_count=1,
        start_seconds=start,
        duration_seconds=end - start,
        is_final=final,
        alternatives=[
            pb.Alternative(
                transcript=" ".join(w for w, _, _ in words),
                words=[
                    pb.Word(word=w, punctuated_word=w.title(), start_seconds=s, end_seconds=e)
                    for w, s, e in words
                ],
            )
        ],
    )


def test_first_connection_times_pass_through_and_commit() -> None:
    timeline = Timeline(channels=1)
    out = timeline.result(result(0.0, 1.0, [("a", 0.1, 0.5)]))
    assert out is not None
    assert out.start_seconds == 0.0
    assert timeline.committed_seconds == 1.0


def test_interim_results_do_not_commit() -> None:
    timeline = Timeline(channels=1)
    timeline.result(result(0.0, 1.0, [("a", 0.1, 0.5)], final=False))
    assert timeline.committed_seconds == 0.0


def test_new_connection_is_rebased_by_its_start() -> None:
    """A reconnect at 2.5 s: the new connection's 0.0 is the stream's 2.5."""
    timeline = Timeline(channels=1)
    timeline.result(result(0.0, 2.5, [("a", 0.1, 0.5)]))
    timeline.start_connection(2.5)
    out = timeline.result(result(0.0, 1.0, [("b", 0.25, 0.75)]))
    assert out is not None
    assert (out.start_seconds, out.duration_seconds) == (2.5, 1.0)
    assert (out.alternatives[0].words[0].start_seconds, out.alternatives[0].words[0].end_seconds) == (
        2.75,
        3.25,
    )
    assert timeline.committed_seconds == 3.5


def test_client_offset_is_added_to_every_time_but_not_to_the_cursor() -> None:
    timeline = Timeline(channels=1, offset_seconds=100.0)
    out = timeline.result(result(0.0, 1.0, [("a", 0.1, 0.5)]))
    assert out is not None
    assert out.start_seconds == 100.0
    assert out.alternatives[0].words[0].start_seconds == 100.1
    assert timeline.committed_seconds == 1.0


def test_replayed_results_that_were_delivered_are_dropped() -> None:
    """Containerised audio replays from zero: finals already delivered come again and are dropped."""
    timeline = Timeline(channels=1)
    timeline.result(result(0.0, 2.0, [("a", 0.1, 0.5), ("b", 1.0, 1.9)]))
    timeline.start_connection(0.0)
    assert timeline.result(result(0.0, 2.01, [("a", 0.11, 0.5), ("b", 1.0, 1.95)])) is None


def test_straddling_result_keeps_only_new_words() -> None:
    timeline = Timeline(channels=1)
    timeline.result(result(0.0, 2.0, [("a", 0.1, 0.5), ("b", 1.0, 1.9)]))
    timeline.start_connection(0.0)
    out = timeline.result(result(1.0, 3.0, [("b", 1.0, 1.9), ("c", 2.1, 2.8)]))
    assert out is not None
    assert [w.word for w in out.alternatives[0].words] == ["c"]
    assert out.alternatives[0].transcript == "C"
    assert (out.start_seconds, out.duration_seconds) == (2.0, 1.0)


def test_channels_commit_independently_and_the_cursor_is_the_minimum() -> None:
    timeline = Timeline(channels=2)
    timeline.result(result(0.0, 3.0, [("a", 0.1, 0.5)], channel=0))
    assert timeline.committed_seconds == 0.0
    timeline.result(result(0.0, 2.0, [("b", 0.1, 0.5)], channel=1))
    assert timeline.committed_seconds == 2.0


def test_utterance_end_is_rebased_and_not_repeated() -> None:
    timeline = Timeline(channels=1)
    first = timeline.utterance_end(pb.UtteranceEnd(last_word_end_seconds=1.2))
    assert first is not None
    assert first.last_word_end_seconds == 1.2
    timeline.start_connection(0.0)
    assert timeline.utterance_end(pb.UtteranceEnd(last_word_end_seconds=1.21)) is None
    timeline.start_connection(1.5)
    later = timeline.utterance_end(pb.UtteranceEnd(last_word_end_seconds=0.5))
    assert later is not None
    assert later.last_word_end_seconds == 2.0


def test_speech_started_is_rebased() -> None:
    timeline = Timeline(channels=1, offset_seconds=1.0)
    timeline.start_connection(2.0)
    assert timeline.speech_started(pb.SpeechStarted(timestamp_seconds=0.5)).timestamp_seconds == 3.5


def test_rebased_times_carry_no_float_noise() -> None:
    timeline = Timeline(channels=1)
    timeline.start_connection(0.1)
    out = timeline.result(result(0.2, 0.3, [("a", 0.2, 0.3)]))
    assert out is not None
    assert out.start_seconds == 0.3
    assert out.alternatives[0].words[0].end_seconds == 0.4


def test_times_beyond_the_horizon_are_clamped_and_nan_is_zero() -> None:
    """No upstream time leaves the timeline unbounded: the cursor stays within the horizon."""
    timeline = Timeline(channels=1)
    timeline.horizon = 2.0
    out = timeline.result(result(0.5, float("inf"), [("a", 0.5, float("nan"))]))
    assert out is not None
    assert timeline.committed_seconds == 2.0
    assert (out.start_seconds, out.duration_seconds) == (0.5, 1.5)
    # A later result past the clamp still gets through once the horizon moves on.
    timeline.horizon = 4.0
    later = timeline.result(result(2.5, 3.0, [("b", 2.5, 3.0)]))
    assert later is not None and later.alternatives[0].transcript == "b"


def test_a_result_on_a_channel_far_beyond_any_stream_is_dropped() -> None:
    timeline = Timeline(channels=1)
    assert timeline.result(result(0.0, 1.0, [("a", 0.1, 0.5)], channel=100_000_000)) is None
    assert timeline.committed_seconds == 0.0
