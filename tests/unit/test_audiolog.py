"""The replay log: ordered entries, trimmed at the committed byte position."""

from __future__ import annotations

from gateway.audiolog import AudioLog


def make() -> AudioLog:
    log = AudioLog()
    log.append_audio(b"aaaa")
    log.append_control('{"type":"Finalize"}')
    log.append_audio(b"bbbb")
    log.append_audio(b"cccc")
    return log


def test_positions_and_numbers() -> None:
    log = make()
    assert (log.start_seq, log.end_seq, log.received_bytes, log.held_bytes) == (0, 4, 12, 12)
    assert log.get(1).payload == '{"type":"Finalize"}'
    assert log.get(1).position == 4
    assert log.get(3).position == 8


def test_trim_cuts_a_straddling_chunk() -> None:
    log = make()
    log.trim(6, before_seq=4)
    assert log.start_seq == 2
    assert log.get(2).payload == b"bb"
    assert log.get(2).position == 6
    assert log.held_bytes == 6


def test_trim_keeps_entries_not_yet_sent() -> None:
    log = make()
    log.trim(12, before_seq=2)
    assert log.start_seq == 2
    assert log.held_bytes == 8


def test_trim_at_a_control_keeps_the_control() -> None:
    log = make()
    log.trim(4, before_seq=4)
    assert log.start_seq == 1
    assert log.get(1).payload == '{"type":"Finalize"}'


def test_trim_everything() -> None:
    log = make()
    log.trim(12, before_seq=4)
    assert (log.start_seq, log.end_seq, log.held_bytes, log.start_position) == (4, 4, 0, 12)
