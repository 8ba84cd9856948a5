"""The relay core's replay log: audio and control commands since the committed cursor, and the
send cursor that walks them.

Entries keep the order the client sent them in, each numbered (``seq``) and placed at the byte
position of the audio stream where it was received. :meth:`AudioLog.take` hands the next entry
to the sender; a reconnect rewinds the cursor to the first entry kept; commits drop entries from
the front.

The log bounds its real memory, not just its audio: :attr:`AudioLog.memory` counts every entry's
bookkeeping, and small chunks are merged (the unsent tail grows in place; runs of sent chunks are
joined once they are numerous), so that a client sending 2-byte messages gets the same replay
capacity, in bytes of memory, as one sending 100 ms chunks. Repeated controls with no audio in
between say nothing new and are dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

# What one entry costs besides its payload: the Entry object (three slots), the payload
# object's header (bytes: 33 bytes; str: 49), and its slot in the deque. Measured with
# sys.getsizeof on CPython 3.11 and rounded up; tests/unit/test_audiolog.py checks it against
# tracemalloc.
ENTRY_COST: Final = 128
# Chunks smaller than this are merged with their neighbours (the unsent tail grows in place;
# runs of sent ones are joined), up to _COALESCE_BYTES: for them the bookkeeping would cost more
# than a tenth of the audio. Bigger chunks are kept, and sent, as they came.
SMALL_CHUNK_BYTES: Final = 1024
_COALESCE_BYTES: Final = 16 * 1024
# At most this many distinct controls between two pieces of audio (Finalize per channel and
# for all channels: at most 21); more only repeat what was asked.
MAX_CONTROLS_PER_GAP: Final = 32
# Sent small chunks are joined once there are this many entries (then each time they double):
# at 20 ms frames the entries' bookkeeping (about 130 bytes on 640 of audio) is then at most a
# second's worth of frames, not the ~200 frames held between two finals at Deepgram's cadence.
_COMPACT_MIN_ENTRIES: Final = 64


@dataclass(slots=True)
class Entry:
    """One audio chunk (bytes; a bytearray while it is the unsent tail growing) or control
    message (JSON text) at a byte position."""

    position: int
    payload: bytes | bytearray | str


class AudioLog:
    """Ordered audio and controls, trimmed from the front as results are committed."""

    def __init__(self) -> None:
        self._entries: deque[Entry] = deque()
        # How many entries, from the front, have been handed to the sender.
        self._sent = 0
        self.received_bytes = 0
        # Controls appended since the last audio (what a repeat is compared with).
        self._gap_controls: list[str] = []
        self._text_bytes = 0
        self._compact_at = _COMPACT_MIN_ENTRIES

    @property
    def start_position(self) -> int:
        """Byte position of the first audio still held (everything before is committed)."""
        return self._entries[0].position if self._entries else self.received_bytes

    @property
    def held_bytes(self) -> int:
        """Audio bytes held."""
        return self.received_bytes - self.start_position

    @property
    def entries(self) -> int:
        return len(self._entries)

    @property
    def memory(self) -> int:
        """Bytes of memory the log holds: audio, control texts and every entry's bookkeeping."""
        # Asked for every client frame: held_bytes and start_position inlined.
        entries = self._entries
        if not entries:
            return self._text_bytes
        held = self.received_bytes - entries[0].position
        return held + self._text_bytes + ENTRY_COST * len(entries)

    @property
    def unsent(self) -> bool:
        return self._sent < len(self._entries)

    def unsent_audio_bytes(self) -> int | None:
        """The audio bytes waiting to be sent; None when a control waits too (it must not be
        held back behind audio that waits for more)."""
        entries = self._entries
        total = 0
        for i in range(self._sent, len(entries)):
            payload = entries[i].payload
            if isinstance(payload, str):
                return None
            total += len(payload)
        return total

    def append_audio(self, data: bytes) -> None:
        entries = self._entries
        self._gap_controls.clear()
        if self._sent < len(entries):
            tail = entries[-1]
            payload = tail.payload
            if (
                not isinstance(payload, str)
                and len(data) < SMALL_CHUNK_BYTES
                and len(payload) + len(data) <= _COALESCE_BYTES
            ):
                if isinstance(payload, bytes):
                    payload = tail.payload = bytearray(payload)
                payload += data
                self.received_bytes += len(data)
                return
        entries.append(Entry(self.received_bytes, data))
        self.received_bytes += len(data)
        if len(entries) >= self._compact_at:
            self._compact()

    def append_sent(self, data: bytes) -> None:
        """Append audio that leaves at once, when nothing waits to be sent: what
        :meth:`append_audio` and then :meth:`take_audio` would do, in one step (and, being
        sent, the frame can be joined with the sent audio before it by the next compaction)."""
        entries = self._entries
        if self._gap_controls:
            self._gap_controls.clear()
        entries.append(Entry(self.received_bytes, data))
        self.received_bytes += len(data)
        self._sent += 1
        if len(entries) >= self._compact_at:
            self._compact()

    def append_control(self, text: str) -> bool:
        """Append a control; False when it repeats one received since the last audio, or when
        too many came since (it is dropped: it could only ask again what was asked)."""
        gap = self._gap_controls
        if text in gap or len(gap) >= MAX_CONTROLS_PER_GAP:
            return False
        gap.append(text)
        self._entries.append(Entry(self.received_bytes, text))
        self._text_bytes += len(text)
        return True

    def take(self) -> bytes | str | None:
        """The next entry to send, and move the cursor past it; None when all was sent."""
        if self._sent >= len(self._entries):
            return None
        entry = self._entries[self._sent]
        self._sent += 1
        payload = entry.payload
        if isinstance(payload, bytearray):
            # Sent entries never change again: freeze the grown tail.
            payload = entry.payload = bytes(payload)
        return payload

    def take_audio(self, max_bytes: int) -> list[bytes]:
        """The audio entries next in line, up to the next control and within ``max_bytes`` (at
        least one if any), and move the cursor past them: what can share one message."""
        entries = self._entries
        out: list[bytes] = []
        total = 0
        while self._sent < len(entries):
            entry = entries[self._sent]
            payload = entry.payload
            if isinstance(payload, str) or (out and total + len(payload) > max_bytes):
                break
            if isinstance(payload, bytearray):
                payload = entry.payload = bytes(payload)
            out.append(payload)
            total += len(payload)
            self._sent += 1
        return out

    def rewind(self) -> int:
        """Point the cursor at the first entry held; returns the audio bytes it will resend."""
        resent = 0
        for i, entry in enumerate(self._entries):
            if i >= self._sent:
                break
            if not isinstance(entry.payload, str):
                resent += len(entry.payload)
        self._sent = 0
        return resent

    def trim(self, position: int) -> None:
        """Drop sent audio and controls before byte ``position``; a sent chunk straddling it is
        cut. Unsent entries stay whatever their position: they still have to reach the upstream."""
        entries = self._entries
        while self._sent:
            head = entries[0]
            payload = head.payload
            if isinstance(payload, str):
                if head.position > position:
                    return
                entries.popleft()
                self._sent -= 1
                self._text_bytes -= len(payload)
                continue
            end = head.position + len(payload)
            if end <= position:
                entries.popleft()
                self._sent -= 1
            elif head.position < position:
                head.payload = payload[position - head.position :]
                head.position = position
                return
            else:
                return
        if len(entries) < _COMPACT_MIN_ENTRIES:
            self._compact_at = _COMPACT_MIN_ENTRIES

    def _compact(self) -> None:
        """Join runs of adjacent small sent audio chunks into entries of up to _COALESCE_BYTES.

        Costs a copy of the sent audio, and runs only when the entries have doubled since the
        last time, so each byte is copied a bounded number of times on average."""
        kept: deque[Entry] = deque()
        run: list[bytes] = []
        run_position = run_bytes = 0
        sent = 0

        def flush() -> None:
            nonlocal sent, run_bytes
            if run:
                kept.append(Entry(run_position, run[0] if len(run) == 1 else b"".join(run)))
                sent += 1
                run.clear()
                run_bytes = 0

        for i, entry in enumerate(self._entries):
            payload = entry.payload
            if i < self._sent and isinstance(payload, bytes) and len(payload) < SMALL_CHUNK_BYTES:
                if run_bytes + len(payload) > _COALESCE_BYTES:
                    flush()
                if not run:
                    run_position = entry.position
                run.append(payload)
                run_bytes += len(payload)
                continue
            flush()
            kept.append(entry)
            if i < self._sent:
                sent += 1
        flush()
        self._entries = kept
        self._sent = sent
        self._compact_at = max(2 * len(kept), _COMPACT_MIN_ENTRIES)
