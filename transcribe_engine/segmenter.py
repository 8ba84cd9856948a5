"""Endpointing and interim scheduling for one channel, in audio time, with no I/O.

The segmenter turns VAD probabilities (one per 32 ms window) into decisions: speech started,
an interim is due for the open window, the window is final (and whether that is an endpoint),
the utterance ended. It never sees audio, so it is tested without a model; the server decodes
the audio range each decision names. Times are samples at 16 kHz internally, seconds outside.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from transcribe_engine.vad import WINDOW

RATE: Final = 16_000
_SPEECH_ON: Final = 0.5  # Silero's usual threshold
_SPEECH_OFF: Final = 0.35  # hysteresis: weaker evidence only continues speech
_SOFT_PAUSE_S: Final = 0.15  # a pause this long is enough to cut an over-long segment
_HARD_CUT_LOOKBACK_S: Final = 3.0
_SPEECH_PAD_S: Final = 0.3  # audio kept before the VAD onset, which fires a little late
_SILENCE_FINAL_S: Final = 5.0  # an empty final closes a long silent window
# The first interim of a window's speech comes early (at min_interim_speech_s), ahead of the
# cadence; the next one then waits a period plus this, where the cadence's first would have
# come on average (0.5 s of speech and half a period's phase). Restarting the cadence at the
# early one cost 20 % more interim decodes on the corpus; this keeps their number.
_EARLY_LEAD_S: Final = 0.5
# An early interim that decoded no words is tried again after this much more speech.
_EARLY_RETRY_S: Final = 0.3
# Audio before a window given to the decoder after a cut that may fall inside a word (the hard
# cap, Finalize), so the word cut at its onset is heard whole; see Window.context_start.
_CUT_CONTEXT_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class SegmenterSettings:
    endpointing_ms: int | None  # None: no endpointing; windows close at the caps or Finalize
    min_endpointing_ms: int = 300
    interim_period_s: float | None = 1.0  # None: no interim results
    soft_max_segment_s: float = 10.0
    hard_max_segment_s: float = 20.0
    utterance_end_ms: int | None = None
    # An interim for less speech than this waits (Whisper answers a breath with "Thank you.";
    # finals decode from 0.25 s, see stream._MIN_FINAL_SPEECH_S). The first interim of a
    # window's speech is sent as soon as there is this much, not at the next period tick, so
    # the first words show ~0.3 s after the onset plus one greedy decode (docs/engine.md).
    min_interim_speech_s: float = 0.3

    @property
    def endpoint_samples(self) -> int | None:
        if self.endpointing_ms is None:
            return None
        return max(self.endpointing_ms, self.min_endpointing_ms) * RATE // 1000


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    timestamp: float


@dataclass(frozen=True, slots=True)
class Window:
    """A results window to report: decode ``[audio_start, end]``, report ``[start, end]``."""

    segment_id: int
    start: float
    end: float
    audio_start: float
    has_speech: bool  # False: report an empty transcript without decoding
    is_final: bool
    speech_final: bool = False
    from_finalize: bool = False
    speech_s: float = 0.0  # how much of the window the VAD called speech
    # The earliest audio a decode may hear as context (its words are not the window's). After
    # an endpoint or a pause this is the window's start, which lies in silence: context from
    # before it began inside the previous window's last word, and Whisper merged that fragment
    # with the next word (JFK's "ask not | what your country" came out "like your country").
    # After a cut that may fall inside a word (hard cap, Finalize) it reaches back a second.
    context_start: float = 0.0


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    last_word_end: float


Event = SpeechStarted | Window | UtteranceEnd


class Segmenter:
    def __init__(self, settings: SegmenterSettings) -> None:
        self._settings = settings
        self._now = 0  # samples the VAD has classified
        self._cursor = 0  # start of the open results window
        self._in_speech = False
        self._segment_has_speech = False
        self._audio_start = 0  # first sample worth decoding for the open window
        self._context_start = 0  # earliest sample a decode of the open window may hear
        self._silence_run = 0
        self._speech_samples = 0  # in the open window
        self._last_interim = 0
        self._interim_speech = -1  # speech samples in the open window at its last interim
        # Speech samples at which the open window's early interim is due; None once it went.
        self._early_at: int | None = self._early_bar()
        self._segment_id = 0
        self._recent: deque[tuple[int, float]] = deque(maxlen=int(_HARD_CUT_LOOKBACK_S * RATE) // WINDOW)
        self._speech_starts: deque[int] = deque(maxlen=16)
        self._pending_utterance_end: float | None = None

    @property
    def cursor(self) -> float:
        """Start of the open window: everything before it has been reported final."""
        return self._cursor / RATE

    @property
    def keep_from(self) -> float:
        """Audio before this time is never decoded again."""
        return min(self._cursor, self._audio_start) / RATE

    @property
    def segment_id(self) -> int:
        """Identifies the open window; it changes whenever a final closes one."""
        return self._segment_id

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def advance(self, probabilities: list[float]) -> list[Event]:
        events: list[Event] = []
        for probability in probabilities:
            self._step(probability, events)
        return events

    def _step(self, probability: float, events: list[Event]) -> None:
        settings = self._settings
        start = self._now
        self._now += WINDOW
        self._recent.append((start, probability))
        threshold = _SPEECH_OFF if self._in_speech else _SPEECH_ON
        if probability >= threshold:
            self._silence_run = 0
            self._speech_samples += WINDOW
            if not self._in_speech:
                self._in_speech = True
                self._speech_starts.append(start)
                self._resolve_utterance_end(events, next_speech=start)
                if not self._segment_has_speech:
                    self._segment_has_speech = True
                    self._audio_start = max(self._cursor, start - int(_SPEECH_PAD_S * RATE), 0)
                events.append(SpeechStarted(start / RATE))
        else:
            self._silence_run += WINDOW
            endpoint = settings.endpoint_samples
            if self._in_speech:
                if endpoint is not None and self._silence_run >= endpoint:
                    self._in_speech = False
                    events.append(self._close(self._now, speech_final=True))
                elif endpoint is None and self._silence_run >= _SOFT_PAUSE_S * RATE * 2:
                    # Without endpointing the window stays open, but a new onset is reported.
                    self._in_speech = False
            if (
                self._segment_has_speech
                and self._silence_run >= _SOFT_PAUSE_S * RATE
                and self._segment_length() >= settings.soft_max_segment_s * RATE
            ) or (
                not self._segment_has_speech
                and not self._in_speech
                and self._now - self._cursor >= _SILENCE_FINAL_S * RATE
            ):
                events.append(self._close(self._now, speech_final=False))
        if self._segment_has_speech and self._segment_length() >= settings.hard_max_segment_s * RATE:
            events.append(self._close(self._quietest_recent(), speech_final=False, in_speech=True))
            self._segment_has_speech = self._in_speech
            self._audio_start = self._cursor
        self._check_utterance_end(events)
        period = settings.interim_period_s
        # The first interim of a window's speech need not wait for the period (the phase of a
        # silent window's empty interims put it up to a period after the onset).
        early = self._early_at is not None and self._speech_samples >= self._early_at
        if early and period is not None:
            self._early_at = None
            self._last_interim = self._now + int(_EARLY_LEAD_S * RATE)
            self._interim_speech = self._speech_samples
            events.append(self._window(self._now, is_final=False))
        elif period is not None and self._now - self._last_interim >= period * RATE:
            too_little = 0 < self._speech_samples < settings.min_interim_speech_s * RATE
            # Without new speech since the last interim the decode would hear only silence
            # more and say the same: it is skipped (the final follows at the endpoint).
            unchanged = self._speech_samples > 0 and self._speech_samples == self._interim_speech
            if not too_little and not unchanged:
                self._last_interim = self._now
                self._interim_speech = self._speech_samples
                events.append(self._window(self._now, is_final=False))

    def _segment_length(self) -> int:
        return self._now - max(self._cursor, self._audio_start)

    def _quietest_recent(self) -> int:
        candidates = [(p, s) for s, p in self._recent if s > self._cursor]
        if not candidates:
            return self._now
        _, sample = min(candidates)
        return sample + WINDOW // 2

    def _window(
        self, end: int, *, is_final: bool, speech_final: bool = False, from_finalize: bool = False
    ) -> Window:
        has_speech = self._segment_has_speech or self._in_speech
        audio_start = self._audio_start if has_speech else self._cursor
        return Window(
            segment_id=self._segment_id,
            start=self._cursor / RATE,
            end=end / RATE,
            audio_start=min(audio_start, end) / RATE,
            has_speech=has_speech,
            is_final=is_final,
            speech_final=speech_final,
            from_finalize=from_finalize,
            speech_s=self._speech_samples / RATE,
            context_start=min(self._context_start, end) / RATE,
        )

    def _close(
        self, end: int, *, speech_final: bool, from_finalize: bool = False, in_speech: bool = False
    ) -> Window:
        window = self._window(end, is_final=True, speech_final=speech_final, from_finalize=from_finalize)
        self._cursor = end
        self._audio_start = end
        self._context_start = max(0, end - int(_CUT_CONTEXT_S * RATE)) if in_speech else end
        self._segment_has_speech = False
        self._speech_samples = 0
        self._segment_id += 1
        self._last_interim = max(self._now, end)
        self._interim_speech = -1
        self._early_at = self._early_bar()
        return window

    def _early_bar(self) -> int:
        return int(self._settings.min_interim_speech_s * RATE)

    def note_empty_interim(self, window: Window) -> None:
        """An interim of the open window decoded no words (too little of the first word yet):
        the early interim is tried again once a little more speech is heard."""
        if window.segment_id == self._segment_id and window.has_speech and self._early_at is None:
            self._early_at = round(window.speech_s * RATE) + int(_EARLY_RETRY_S * RATE)

    def finalize(self, total_samples: int) -> Window | None:
        """Close the open window at the very end of the received audio (``Finalize``)."""
        end = max(total_samples, self._now)
        if end <= self._cursor:
            return None
        # Less than a short pause before the cut: it may be inside a word.
        cut_in_speech = self._in_speech or self._silence_run < _SOFT_PAUSE_S * RATE
        window = self._close(end, speech_final=False, from_finalize=True, in_speech=cut_in_speech)
        self._in_speech = False
        self._silence_run = 0
        return window

    def note_final_words(self, last_word_end: float) -> list[Event]:
        """A final with words was decoded; start watching the gap after its last word."""
        self._pending_utterance_end = last_word_end
        events: list[Event] = []
        later = [s for s in self._speech_starts if s / RATE > last_word_end]
        if later:
            self._resolve_utterance_end(events, next_speech=later[0])
        else:
            self._check_utterance_end(events)
        return events

    def _resolve_utterance_end(self, events: list[Event], *, next_speech: int) -> None:
        pending = self._pending_utterance_end
        limit = self._settings.utterance_end_ms
        if pending is None or limit is None:
            return
        if next_speech / RATE - pending >= limit / 1000:
            events.append(UtteranceEnd(pending))
        self._pending_utterance_end = None

    def _check_utterance_end(self, events: list[Event]) -> None:
        pending = self._pending_utterance_end
        limit = self._settings.utterance_end_ms
        if pending is None or limit is None or self._in_speech:
            return
        if self._now / RATE - pending >= limit / 1000:
            events.append(UtteranceEnd(pending))
            self._pending_utterance_end = None
