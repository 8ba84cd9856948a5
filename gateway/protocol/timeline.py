"""One time base across upstream connections.

Each upstream connection counts time from zero from the first byte it receives. The session
starts each connection at some point of the client's audio (zero, or the committed cursor after
a reconnect); the timeline adds that base to every time, tracks how far final results have been
delivered on each channel (the committed cursor), and trims or drops what a replay produces
again.

Whatever times the upstream sends, every time that leaves the timeline is finite and within
``[0, horizon]`` (the relay sets the horizon to the audio received plus a small slack): an
infinite, NaN or absurd time is clamped, so it can neither stop the cursor from moving nor make
it run past the audio, and the ResumePoint computed from it always exists.
"""

from __future__ import annotations

from typing import Final

from transcribe.v1 import transcribe_pb2 as pb

# Tolerance when comparing a replayed connection's times with delivered ones: the same audio
# decoded twice can move boundaries by a few milliseconds.
_EPSILON: Final = 0.02
# No stream has more channels than this (the protocol's limit is 20): a result on a channel
# beyond it is dropped rather than allocating bookkeeping in proportion to its index.
MAX_CHANNELS: Final = 32
# The horizon when nobody sets one: finite, and far beyond any stream (about 30 years).
FAR_SECONDS: Final = 1e9


def clamp(seconds: float, horizon: float) -> float:
    """``seconds`` within [0, horizon]; NaN is 0."""
    if not seconds >= 0.0:  # also true for NaN
        return 0.0
    return seconds if seconds <= horizon else horizon


class Timeline:
    """Rebases upstream times onto the stream's audio and remembers what was delivered."""

    def __init__(self, channels: int, offset_seconds: float = 0.0) -> None:
        self._offset = offset_seconds
        self._base = 0.0
        self._delivered = [0.0] * max(channels, 1)
        self._utterance_ends: dict[int, float] = {}
        # Latest stream time a result may reach (see the module's docstring).
        self.horizon = FAR_SECONDS

    @property
    def committed_seconds(self) -> float:
        """Audio before this point (stream time, without the client's offset) has every final
        result delivered, on every channel."""
        return min(self._delivered)

    def start_connection(self, base_seconds: float) -> None:
        """The next connection's time zero is ``base_seconds`` into the client's audio."""
        self._base = base_seconds

    def result(self, result: pb.Result) -> pb.Result | None:
        """Rebase ``result`` in place; None when it only repeats what was already delivered."""
        channel = result.channel_index
        if channel >= len(self._delivered):
            if channel >= MAX_CHANNELS:
                return None
            # Containerised audio: the gateway learns its channel count from the results.
            self._delivered.extend([0.0] * (channel + 1 - len(self._delivered)))
        horizon = self.horizon
        delivered = self._delivered[channel]
        start = clamp(self._base + result.start_seconds, horizon)
        duration = result.duration_seconds
        end = clamp(start + duration, horizon) if duration >= 0.0 else start
        if end <= delivered + _EPSILON and duration > 0:
            return None
        start = max(start, delivered)
        for alternative in result.alternatives:
            self._trim(alternative, delivered)
        for search in result.search:
            for hit in search.hits:
                hit.start_seconds = self._out(clamp(self._base + hit.start_seconds, horizon))
                hit.end_seconds = self._out(clamp(self._base + hit.end_seconds, horizon))
        result.start_seconds = self._out(start)
        result.duration_seconds = round(max(end - start, 0.0), 6)
        if result.is_final:
            self._delivered[channel] = max(delivered, end)
        return result

    def _trim(self, alternative: pb.Alternative, delivered: float) -> None:
        # Every word of every result passes here: clamp() and _out() are inlined, and the
        # words are rebuilt only when one is dropped.
        words = alternative.words
        base, offset, horizon = self._base, self._offset, self.horizon
        kept: list[pb.Word] | None = None  # the words kept, once one is dropped
        for i, word in enumerate(words):
            start = base + word.start_seconds
            if not start >= 0.0:
                start = 0.0
            elif start > horizon:
                start = horizon
            end = base + word.end_seconds
            if not end >= 0.0:
                end = 0.0
            elif end > horizon:
                end = horizon
            if (start + end) / 2 <= delivered:
                if kept is None:
                    kept = list(words[:i])
                continue
            word.start_seconds = round(start + offset, 6)
            word.end_seconds = round(end + offset, 6)
            if kept is not None:
                kept.append(word)
        if kept is not None:
            del words[:]
            words.extend(kept)
            alternative.transcript = " ".join(w.punctuated_word or w.word for w in kept)

    def speech_started(self, message: pb.SpeechStarted) -> pb.SpeechStarted:
        message.timestamp_seconds = self._out(clamp(self._base + message.timestamp_seconds, self.horizon))
        return message

    def utterance_end(self, message: pb.UtteranceEnd) -> pb.UtteranceEnd | None:
        """Rebase an UtteranceEnd; None when a replay reports a gap that was already reported."""
        end = clamp(self._base + message.last_word_end_seconds, self.horizon)
        previous = self._utterance_ends.get(message.channel_index)
        if previous is not None and end <= previous + _EPSILON:
            return None
        self._utterance_ends[message.channel_index] = end
        message.last_word_end_seconds = self._out(end)
        return message

    def _out(self, seconds: float) -> float:
        # Round so that rebasing does not leak float noise (0.30000000000000004) to clients.
        return round(seconds + self._offset, 6)
