"""One channel's buffered 16 kHz audio: appended as it arrives, sliced for decodes, trimmed."""

from __future__ import annotations

import numpy as np

from transcribe_engine.audio import Samples


class AudioBuffer:
    """One channel's 16 kHz audio from ``start`` onwards; older audio is dropped."""

    def __init__(self) -> None:
        self._chunks: list[Samples] = []
        self._start = 0  # absolute sample index of the first kept sample
        self._total = 0

    @property
    def total(self) -> int:
        return self._total

    @property
    def first(self) -> int:
        """Absolute index of the oldest sample still kept."""
        return self._start

    def append(self, samples: Samples) -> None:
        if len(samples):
            self._chunks.append(samples)
            self._total += len(samples)

    def slice(self, start: int, end: int) -> Samples:
        data = np.concatenate(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        self._chunks = [data] if len(data) else []
        lo = max(0, start - self._start)
        hi = max(lo, end - self._start)
        return data[lo:hi].copy()

    def trim(self, before: int) -> None:
        if before <= self._start or not self._chunks:
            return
        data = np.concatenate(self._chunks)
        drop = min(len(data), before - self._start)
        self._chunks = [data[drop:]] if len(data) > drop else []
        self._start += drop
