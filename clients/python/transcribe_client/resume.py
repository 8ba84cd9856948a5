"""What automatic resume keeps, drops and resends: pure decisions, no I/O.

One transcription may span several `StreamTranscribe` calls: when a call ends UNAVAILABLE with
a `ResumePoint` (a gateway draining in a rolling restart, or its upstream retries exhausted),
the next call starts at the committed point. Byte positions here count from the first byte of
audio the application gave (so they span every call); times are the stream's own seconds, as
the gateway reports them (`start_offset_seconds` included).

`AudioBuffer` holds the audio not yet committed (bounded), `commit_byte` says how much a final
result lets go, `plan_resume` says what the next call resends, and `backoff_s` how long to wait.
The rules are those of `clients/testdata/README.md`, which every client language shares.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

__all__ = [
    "AudioBuffer",
    "RawFormat",
    "ResumePlan",
    "backoff_s",
    "commit_byte",
    "plan_resume",
]

#: Margin kept before a final result's end, so that times rounded to microseconds never let go
#: of a byte the gateway still counts as uncommitted.
COMMIT_MARGIN_S = 0.001


@dataclass(frozen=True, slots=True)
class RawFormat:
    """Raw audio whose bytes map exactly to time."""

    sample_rate: int
    channels: int
    sample_width: int

    @property
    def frame_bytes(self) -> int:
        return self.sample_width * max(self.channels, 1)


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """The next call: its `start_offset_seconds`, and the absolute byte it resends from."""

    start_offset_seconds: float
    resend_from_byte: int


def commit_byte(
    fmt: RawFormat, stream_start_byte: int, stream_start_offset_s: float, committed_s: float
) -> int:
    """The first byte still needed once final results reach `committed_s` (stream time)."""
    frames = int((committed_s - stream_start_offset_s - COMMIT_MARGIN_S) * fmt.sample_rate + 1e-6)
    return stream_start_byte + max(frames, 0) * fmt.frame_bytes


def plan_resume(
    fmt: RawFormat | None,
    stream_start_byte: int,
    committed_seconds: float,
    committed_bytes: int,
    kept_from_byte: int,
) -> ResumePlan | None:
    """What to resend after a call that began at `stream_start_byte` failed with this
    ResumePoint; None when it cannot be resumed (containerised audio, or the audio from the
    resume position on is no longer kept)."""
    if fmt is None:
        return None
    resend_from = stream_start_byte + committed_bytes
    if resend_from < kept_from_byte:
        return None
    return ResumePlan(committed_seconds, resend_from)


def backoff_s(attempt: int, initial_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter before resume `attempt` (1, 2, ...)."""
    ceiling = min(max_s, initial_s * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0, ceiling)


class AudioBuffer:
    """The audio given so far, minus what is committed: append at the end, read from any kept
    position, drop up to a commit. Holds at most `max_bytes`: past that it drops its oldest
    bytes that were already sent (which the next resume then cannot resend), never unsent ones.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._chunks: deque[bytes] = deque()
        self._start = 0  # absolute byte of the first kept byte
        self._size = 0
        self.ended = False

    @property
    def kept_from(self) -> int:
        """The first byte still kept."""
        return self._start

    @property
    def end(self) -> int:
        """One past the last byte given."""
        return self._start + self._size

    @property
    def size(self) -> int:
        return self._size

    def room(self, sent_to: int) -> int:
        """Bytes that can be appended now, given that bytes before `sent_to` were sent."""
        droppable = max(min(sent_to, self.end) - self._start, 0)
        return self.max_bytes - self._size + droppable

    def append(self, data: bytes, sent_to: int) -> None:
        """Adds `data` at the end, dropping sent bytes if the bound needs it (see `room`)."""
        if len(data) > self.room(sent_to):
            raise OverflowError("no room: the audio before the end was not sent yet")
        self._chunks.append(data)
        self._size += len(data)
        if self._size > self.max_bytes:
            self.drop_before(self.end - self.max_bytes)

    def drop_before(self, position: int) -> None:
        """Lets go of every byte before `position`."""
        while self._chunks and position > self._start:
            first = self._chunks[0]
            cut = position - self._start
            if cut >= len(first):
                self._chunks.popleft()
                self._start += len(first)
                self._size -= len(first)
            else:
                self._chunks[0] = first[cut:]
                self._start += cut
                self._size -= cut

    def read(self, position: int, limit: int) -> bytes:
        """Up to `limit` kept bytes from `position` (b"" at the end)."""
        if position < self._start:
            raise IndexError(f"byte {position} is no longer kept (kept from {self._start})")
        out = bytearray()
        offset = self._start
        for chunk in self._chunks:
            if len(out) >= limit:
                break
            if offset + len(chunk) > position:
                begin = max(position + len(out) - offset, 0)
                out += chunk[begin : begin + limit - len(out)]
            offset += len(chunk)
        return bytes(out)
