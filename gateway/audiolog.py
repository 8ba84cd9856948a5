"""The session's replay log: audio and control commands since the committed cursor.

Entries keep the order the client sent them in, each numbered (``seq``) and placed at the byte
position of the audio stream where it was received. The sender walks the log by number; a
reconnect rewinds it to the first entry kept; commits drop entries from the front.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Entry:
    """One audio chunk (bytes) or control message (JSON text) at a byte position."""

    seq: int
    position: int
    payload: bytes | str


class AudioLog:
    """Ordered audio and controls, trimmed from the front as results are committed."""

    def __init__(self) -> None:
        self._entries: deque[Entry] = deque()
        self._next_seq = 0
        self.received_bytes = 0

    @property
    def start_seq(self) -> int:
        """Number of the first entry still held."""
        return self._entries[0].seq if self._entries else self._next_seq

    @property
    def end_seq(self) -> int:
        """Number the next appended entry will get."""
        return self._next_seq

    @property
    def start_position(self) -> int:
        """Byte position of the first audio still held (everything before is committed)."""
        return self._entries[0].position if self._entries else self.received_bytes

    @property
    def held_bytes(self) -> int:
        return self.received_bytes - self.start_position

    def append_audio(self, data: bytes) -> None:
        self._entries.append(Entry(self._next_seq, self.received_bytes, data))
        self._next_seq += 1
        self.received_bytes += len(data)

    def append_control(self, text: str) -> None:
        self._entries.append(Entry(self._next_seq, self.received_bytes, text))
        self._next_seq += 1

    def get(self, seq: int) -> Entry:
        return self._entries[seq - self.start_seq]

    def trim(self, position: int, *, before_seq: int) -> None:
        """Drop audio and controls before byte ``position``, only among entries numbered below
        ``before_seq`` (those already sent upstream); a chunk straddling it is cut."""
        entries = self._entries
        while entries and entries[0].seq < before_seq:
            head = entries[0]
            if isinstance(head.payload, str):
                if head.position >= position:
                    return
                entries.popleft()
                continue
            end = head.position + len(head.payload)
            if end <= position:
                entries.popleft()
            elif head.position < position:
                head.payload = head.payload[position - head.position :]
                head.position = position
                return
            else:
                return
