"""What automatic resume keeps, drops and resends: pure decisions, no I/O.

One transcription may span several `StreamTranscribe` calls: when a call ends UNAVAILABLE with
a `ResumePoint` (a gateway draining in a rolling restart, or its upstream retries exhausted),
the next call starts at the committed point. Byte positions here count from the first byte of
audio the application gave (so they span every call); times are the stream's own seconds, as
the gateway reports them (`start_offset_seconds` included).

`AudioBuffer` holds the audio not yet committed (bounded), `commit_byte` says how much a final
result lets go, `plan_resume` says what the next call resends, and `backoff_s` how long to wait.
`ControlLog` holds the controls (Finalize, KeepAlive) at the byte positions where they were
given, so a call sends them in order with the audio and a resume resends a Finalize that lies in
the resent audio at the same place. The rules are those of `clients/testdata/README.md`, which
every client language shares.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "MAX_KEPT_CONTROLS",
    "AudioBuffer",
    "ControlLog",
    "PlacedControl",
    "RawFormat",
    "ResumePlan",
    "backoff_s",
    "commit_byte",
    "kept_for_resend",
    "plan_resume",
    "send_until",
]

#: Most controls a `ControlLog` holds by default (sent Finalizes kept for a resume, and unsent
#: controls of any kind).
MAX_KEPT_CONTROLS = 1024

T = TypeVar("T")

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


def send_until(
    position: int, end: int, frame_bytes: int, limit: int, *, ended: bool, control_at: int | None
) -> int:
    """Where the next audio message from `position` ends (`position`: nothing to send yet).

    At most `limit` bytes, up to the audio given so far (`end`), and on a whole sample frame
    counted from the first byte (clients/testdata/README.md: chunks are whole frames): a frame
    cut short waits for its rest. Two exceptions: the audio has ended (its last bytes go as
    they are), or the next control (`control_at`) comes first (the message stops there, even
    within a frame, so that the control keeps its place).
    """
    stop = min(end, position + limit)
    if control_at is not None and control_at <= stop:
        return max(control_at, position)
    if ended and stop == end:
        return stop
    aligned = stop - stop % max(frame_bytes, 1)
    return max(aligned, position)


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


def kept_for_resend(command: str | None) -> bool:
    """Whether a sent control (by its `Control.command` name) is kept to be resent by a resume.

    A Finalize is: it changes which results come back (final, `from_finalize`) for the audio
    before it. A KeepAlive is not: it only matters live, and a new call needs none.
    """
    return command == "finalize"


@dataclass(frozen=True, slots=True)
class PlacedControl(Generic[T]):
    """A control given after the audio before byte `position`; `seq` orders all controls."""

    seq: int
    position: int
    control: T
    resend: bool


class ControlLog(Generic[T]):
    """The controls given so far, each at the byte position of the audio it follows.

    A call sends a control after the audio before its position and before the audio after it
    (`next_from`, `sent`). Once sent, a control that only matters live (`resend=False`, or the
    same control already kept at the same position) is let go; one kept for resending stays
    until its position is committed (`commit`) or a resume starts at or after it (`rewind`),
    and a resume sends it again before the audio after its position. Holds at most `max_kept`:
    past that it drops its oldest sent control (a resume then does not resend it), never
    unsent ones (`room` is False until the next is sent).
    """

    def __init__(self, max_kept: int = MAX_KEPT_CONTROLS) -> None:
        if max_kept <= 0:
            raise ValueError("max_kept must be positive")
        self.max_kept = max_kept
        self._entries: deque[PlacedControl[T]] = deque()
        self._next_seq = 0
        #: Controls with a lower seq were sent by the current call (they are the oldest ones).
        self.sent_seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[PlacedControl[T], ...]:
        return tuple(self._entries)

    def room(self) -> bool:
        """Whether a control can be added now."""
        return len(self._entries) < self.max_kept or self._entries[0].seq < self.sent_seq

    def add(self, position: int, control: T, *, resend: bool) -> PlacedControl[T]:
        """Adds `control` after the audio before `position` (the end of the audio so far)."""
        if not self.room():
            raise OverflowError("no room: every kept control is still unsent")
        if self._entries and position < self._entries[-1].position:
            raise ValueError("controls are added in the order of the audio")
        if resend and any(
            e.resend and e.position == position and e.control == control for e in self._entries
        ):
            resend = False  # the same control at the same place: resending one is enough
        entry = PlacedControl(self._next_seq, position, control, resend)
        self._next_seq += 1
        self._entries.append(entry)
        if len(self._entries) > self.max_kept:
            self._entries.popleft()  # the oldest, sent (room said so)
        return entry

    def next_from(self, seq: int) -> PlacedControl[T] | None:
        """The first control a call whose cursor is at `seq` has still to send."""
        return next((e for e in self._entries if e.seq >= seq), None)

    def sent(self, entry: PlacedControl[T]) -> None:
        """The current call has sent `entry` (and every control before it)."""
        self.sent_seq = max(self.sent_seq, entry.seq + 1)
        if not entry.resend:
            self._entries = deque(e for e in self._entries if e.seq != entry.seq)

    def commit(self, position: int) -> None:
        """The audio before `position` has its final results: its sent controls go."""
        self._drop_sent_through(position)

    def rewind(self, position: int) -> int:
        """A resume resends the audio from `position`: the sent controls at or before it go
        (their audio is committed), the later ones are to be sent again. Returns the seq the
        next call's cursor starts at."""
        self._drop_sent_through(position)
        self.sent_seq = self._entries[0].seq if self._entries else self._next_seq
        return self.sent_seq

    def _drop_sent_through(self, position: int) -> None:
        self._entries = deque(
            e for e in self._entries if not (e.seq < self.sent_seq and e.position <= position)
        )
