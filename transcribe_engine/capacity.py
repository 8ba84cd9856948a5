"""Admission from decode costs measured while serving. Pure: no clock, no I/O.

A stream costs decode-worker seconds per second of its audio: finals (one beam-search decode
per segment) and, with interim results, the greedy re-decodes of the open segment. The meter
adds up what decodes actually took and how much audio streams brought, and every
``window_audio_s`` of audio folds the ratio into a moving average. Admission charges each stream
its kind's cost and admits while the sum stays within the decode workers.

There is no start-up calibration: it measured a few decodes once, and on a busy moment it
admitted one stream where five keep up. The prior is this project's benchmark on its 2-core
machine (docs/engine-bench.md), per worker, and measurements replace it as streams are served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

# Worker seconds per audio second, from bench.engine on the 2-core machine (docs/engine-bench.md):
# finals alone run at RTF ~0.096; with interims the engine spends ~0.28-0.31 CPU seconds per
# audio second (shorter encoder contexts, interims only with new speech). 6 and 8 streams
# kept up in two runs; these figures admit 6.
PRIOR_FINAL_COST: Final = 0.09
PRIOR_INTERIM_COST: Final = 0.2
# A measured cost is kept within these factors of the prior: one slow decode while another
# process had the cores must not shut admission down, nor a run of silence open it wide.
_FLOOR_FACTOR: Final = 0.5
_CEILING_FACTOR: Final = 3.0


@dataclass(slots=True)
class CostMeter:
    """Moving averages of decode cost per audio second, for finals and for interims."""

    final_cost: float = PRIOR_FINAL_COST
    interim_cost: float = PRIOR_INTERIM_COST
    alpha: float = 0.3
    window_audio_s: float = 20.0
    _final_busy: float = field(default=0.0, repr=False)
    _interim_busy: float = field(default=0.0, repr=False)
    _audio: float = field(default=0.0, repr=False)
    _interim_audio: float = field(default=0.0, repr=False)

    def decoded(self, seconds: float, *, final: bool) -> None:
        """A decode took ``seconds`` of one worker."""
        if final:
            self._final_busy += seconds
        else:
            self._interim_busy += seconds

    def heard(self, seconds: float, *, interim_results: bool) -> None:
        """A stream brought ``seconds`` of audio (per channel decoded)."""
        self._audio += seconds
        if interim_results:
            self._interim_audio += seconds
        if self._audio >= self.window_audio_s:
            self._fold()

    def _fold(self) -> None:
        self.final_cost = _bounded(
            self._blend(self.final_cost, self._final_busy / self._audio), PRIOR_FINAL_COST
        )
        if self._interim_audio > 0:
            measured = self._interim_busy / self._interim_audio
            self.interim_cost = _bounded(self._blend(self.interim_cost, measured), PRIOR_INTERIM_COST)
        self._final_busy = self._interim_busy = self._audio = self._interim_audio = 0.0

    def _blend(self, old: float, new: float) -> float:
        return old + self.alpha * (new - old)

    def stream_cost(self, *, interim_results: bool, channels: int = 1) -> float:
        """Worker seconds per second one real-time stream needs."""
        per_channel = self.final_cost + (self.interim_cost if interim_results else 0.0)
        return per_channel * channels


def _bounded(value: float, prior: float) -> float:
    return min(max(value, prior * _FLOOR_FACTOR), prior * _CEILING_FACTOR)


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether one more stream fits, given what is open and the workers there are."""

    workers: int
    max_streams: int | None = None  # a fixed cap replaces the measured budget

    def admits(self, *, active_streams: int, active_load: float, load: float) -> bool:
        if self.max_streams is not None:
            return active_streams < self.max_streams
        # One stream is always admitted, however heavy; beyond that the budget decides.
        return active_streams == 0 or active_load + load <= self.workers + 1e-9

    def streams(self, meter: CostMeter) -> int:
        """How many one-channel streams with interim results are admitted now."""
        if self.max_streams is not None:
            return self.max_streams
        return max(1, int(self.workers / meter.stream_cost(interim_results=True) + 1e-9))
