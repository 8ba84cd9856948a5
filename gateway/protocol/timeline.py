"""One time base across upstream connections.

Each upstream connection counts time from zero from the first byte it receives. The session
starts each connection at some point of the client's audio (zero, or the committed cursor after
a reconnect); the timeline adds that base to every time, tracks how far final results have been
delivered on each channel (the committed cursor), and trims or drops what a replay produces
again.
"""

from __future__ import annotations

from typing import Final

from transcribe.v1 import transcribe_pb2 as pb

# Tolerance when comparing a replayed connection's times with delivered ones: the same audio
# decoded twice can move boundaries by a few milliseconds.
_EPSILON: Final = 0.02


class Timeline:
    """Rebases upstream times onto the stream's audio and remembers what was delivered."""

    def __init__(self, channels: int, offset_seconds: float = 0.0) -> None:
        self._offset = offset_seconds
        self._base = 0.0
        self._delivered = [0.0] * max(channels, 1)
        self._utterance_ends: dict[int, float] = {}

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
            self._delivered.extend([0.0] * (channel + 1 - len(self._delivered)))
        delivered = self._delivered[channel]
        start = self._base + result.start_seconds
        end = start + result.duration_seconds
        if end <= delivered + _EPSILON and result.duration_seconds > 0:
            return None
        start = max(start, delivered)
        for alternative in result.alternatives:
            self._trim(alternative, delivered)
        for search in result.search:
            for hit in search.hits:
                hit.start_seconds = self._out(self._base + hit.start_seconds)
                hit.end_seconds = self._out(self._base + hit.end_seconds)
        result.start_seconds = self._out(start)
        result.duration_seconds = round(max(end - start, 0.0), 6)
        if result.is_final:
            self._delivered[channel] = max(delivered, end)
        return result

    def _trim(self, alternative: pb.Alternative, delivered: float) -> None:
        kept = []
        for word in alternative.words:
            start = self._base + word.start_seconds
            end = self._base + word.end_seconds
            if (start + end) / 2 <= delivered:
                continue
            word.start_seconds = self._out(start)
            word.end_seconds = self._out(end)
            kept.append(word)
        if len(kept) != len(alternative.words):
            del alternative.words[:]
            alternative.words.extend(kept)
            alternative.transcript = " ".join(w.punctuated_word or w.word for w in kept)

    def speech_started(self, message: pb.SpeechStarted) -> pb.SpeechStarted:
        message.timestamp_seconds = self._out(self._base + message.timestamp_seconds)
        return message

    def utterance_end(self, message: pb.UtteranceEnd) -> pb.UtteranceEnd | None:
        """Rebase an UtteranceEnd; None when a replay reports a gap that was already reported."""
        end = self._base + message.last_word_end_seconds
        previous = self._utterance_ends.get(message.channel_index)
        if previous is not None and end <= previous + _EPSILON:
            return None
        self._utterance_ends[message.channel_index] = end
        message.last_word_end_seconds = self._out(end)
        return message

    def _out(self, seconds: float) -> float:
        # Round so that rebasing does not leak float noise (0.30000000000000004) to clients.
        return round(seconds + self._offset, 6)
