"""The replay log: ordered entries, the send cursor, trims at the committed byte position, and
memory that its own accounting bounds."""

from __future__ import annotations

import tracemalloc

from gateway.audiolog import ENTRY_COST, MAX_CONTROLS_PER_GAP, SMALL_CHUNK_BYTES, AudioLog

FINALIZE = '{"type":"Finalize"}'
A, B, C = b"a" * 2000, b"b" * 2000, b"c" * 2000


def make() -> AudioLog:
    log = AudioLog()
    log.append_audio(A)
    log.append_control(FINALIZE)
    log.append_audio(B)
    log.append_audio(C)
    return log


def take_all(log: AudioLog) -> list[bytes | str]:
    out = []
    while (payload := log.take()) is not None:
        out.append(payload)
    return out


def test_take_walks_the_entries_in_order() -> None:
    log = make()
    assert (log.entries, log.received_bytes, log.held_bytes) == (4, 6000, 6000)
    assert take_all(log) == [A, FINALIZE, B, C]
    assert log.take() is None
    assert not log.unsent


def test_take_audio_takes_the_audio_waiting_up_to_a_control_or_the_byte_limit() -> None:
    log = make()
    assert log.take_audio(10_000) == [A]
    assert log.take_audio(10_000) == []
    assert log.take() == FINALIZE
    assert log.take_audio(3000) == [B]
    # One entry even when it alone is over the limit.
    assert log.take_audio(1) == [C]
    assert log.take_audio(10_000) == []
    log.rewind()
    assert log.take_audio(10_000) == [A]
    log.take()
    assert log.take_audio(4000) == [B, C]
    assert not log.unsent


def test_take_audio_freezes_the_growing_tail() -> None:
    log = AudioLog()
    log.append_audio(b"x" * 10)
    log.append_audio(b"y" * 10)
    (frame,) = log.take_audio(100)
    assert frame == b"x" * 10 + b"y" * 10 and isinstance(frame, bytes)
    log.append_audio(b"z" * 10)
    assert log.take_audio(100) == [b"z" * 10]


def test_rewind_resends_everything_held() -> None:
    log = make()
    take_all(log)
    assert log.rewind() == 6000
    assert take_all(log) == [A, FINALIZE, B, C]


def test_trim_cuts_a_straddling_chunk() -> None:
    log = make()
    take_all(log)
    log.trim(3000)
    assert log.held_bytes == 3000
    log.rewind()
    assert take_all(log) == [B[1000:], C]


def test_trim_keeps_entries_not_yet_sent() -> None:
    log = make()
    log.take()
    log.take()
    log.trim(6000)
    assert log.held_bytes == 4000
    assert take_all(log) == [B, C]


def test_trim_at_a_control_drops_it_once_sent() -> None:
    """A Finalize at the replay position finalised audio before it: a new connection starting
    there has nothing for it to finalise."""
    log = make()
    take_all(log)
    log.trim(2000)
    log.rewind()
    assert take_all(log) == [B, C]


def test_trim_everything() -> None:
    log = make()
    take_all(log)
    log.trim(6000)
    assert (log.entries, log.held_bytes, log.start_position, log.memory) == (0, 0, 6000, 0)


def test_small_unsent_chunks_grow_the_tail_in_place() -> None:
    log = AudioLog()
    for _ in range(1000):
        log.append_audio(b"xy")
    assert log.entries == 1
    assert log.take() == b"xy" * 1000
    # Once sent, the tail is frozen: new audio starts a new entry.
    log.append_audio(b"z")
    assert log.entries == 2


def test_big_chunks_are_kept_as_they_came() -> None:
    log = AudioLog()
    log.append_audio(b"a" * SMALL_CHUNK_BYTES)
    log.append_audio(b"b" * SMALL_CHUNK_BYTES)
    assert log.entries == 2


def test_small_sent_chunks_are_joined_when_numerous() -> None:
    """2-byte messages sent one by one: the sent ones are joined, so the bookkeeping stays a
    small share of the memory held."""
    log = AudioLog()
    for i in range(10_000):
        log.append_audio(bytes([i % 256, 0]))
        assert log.take() is not None
    assert log.entries < 300
    assert log.memory < 20_000 + 300 * ENTRY_COST
    log.rewind()
    assert b"".join(p for p in take_all(log) if isinstance(p, bytes)) == b"".join(
        bytes([i % 256, 0]) for i in range(10_000)
    )


def test_repeated_controls_with_no_audio_between_collapse() -> None:
    log = AudioLog()
    assert log.append_control(FINALIZE)
    assert not log.append_control(FINALIZE)
    assert log.append_control('{"type":"Finalize","channel":1}')
    log.append_audio(b"a")
    assert log.append_control(FINALIZE)
    assert log.entries == 4


def test_distinct_controls_between_two_audio_chunks_are_bounded() -> None:
    log = AudioLog()
    kept = sum(log.append_control(f'{{"type":"Finalize","channel":{n}}}') for n in range(1000))
    assert kept == MAX_CONTROLS_PER_GAP


def test_memory_accounting_covers_what_python_really_allocates() -> None:
    """tracemalloc's count of what 20,000 small entries (audio and controls, none coalesced)
    cost stays within the log's own accounting."""
    tracemalloc.start()
    try:
        log = AudioLog()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            log.append_audio(bytes([i % 256]) * 3)
            log.take()
            log.append_control(FINALIZE if i % 2 else '{"type":"Finalize","channel":0}')
            log.take()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used <= log.memory, (used, log.memory)


def joined(payloads: list[bytes | str]) -> list[bytes | str]:
    """Payloads with adjacent audio joined: what the upstream hears, whatever the chunking."""
    out: list[bytes | str] = []
    for payload in payloads:
        if isinstance(payload, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += payload
        else:
            out.append(payload)
    return out


def test_append_sent_is_append_then_take() -> None:
    sent, queued = AudioLog(), AudioLog()
    for log in (sent, queued):
        log.append_control(FINALIZE)
        assert log.take() == FINALIZE
    most = (0, 0)
    for i in range(3 * 64):  # past several compactions
        frame = bytes([i % 251]) * 640
        sent.append_sent(frame)
        queued.append_audio(frame)
        assert queued.take_audio(1 << 20) == [frame]
        assert not sent.unsent
        assert sent.received_bytes == queued.received_bytes
        most = (max(most[0], sent.entries), max(most[1], queued.entries))
    # Compaction may join the new frame a frame earlier (it is already sent): never more entries.
    assert most[0] <= most[1] <= 64
    assert sent.rewind() == queued.rewind()
    assert joined(take_all(sent)) == joined(take_all(queued))
    # A control after audio sent at once is not a repeat.
    assert sent.append_control(FINALIZE)
