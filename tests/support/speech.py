"""The project's own test speech (tests/data/speech): synthetic English clips with their texts.

Every functional test that needs speech reads it from here, so that a fresh clone with nothing
beside it runs the whole suite. Real human speech (../shared/corpus) is only for accuracy tests
and benchmarks, through the ``corpus`` fixture in tests/conftest.py, which skips without it.
"""

from __future__ import annotations

import csv
import wave
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SPEECH = ROOT / "tests" / "data" / "speech"
RATE = 16_000
SAMPLE_WIDTH = 2


@dataclass(frozen=True)
class Clip:
    """One clip: 16 kHz mono 16-bit WAV, and the text it was synthesised from."""

    name: str
    text: str
    path: Path

    def pcm(self) -> bytes:
        """The clip's 16-bit little-endian mono PCM frames (the WAV header stripped)."""
        with wave.open(str(self.path), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, SAMPLE_WIDTH)
            frames: bytes = wav.readframes(wav.getnframes())
            return frames

    @property
    def duration_s(self) -> float:
        with wave.open(str(self.path), "rb") as wav:
            return wav.getnframes() / wav.getframerate()


def _load(directory: Path) -> dict[str, Clip]:
    with (directory / "texts.tsv").open(newline="") as table:
        rows = csv.DictReader(table, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {row["name"]: Clip(row["name"], row["text"], directory / f"{row['name']}.wav") for row in rows}


CLIPS = _load(SPEECH)
WEATHER = CLIPS["weather"]  # about 5 s, one sentence
TRAIN = CLIPS["train"]  # about 6 s, one sentence
THANKS = CLIPS["thanks"]  # about 2 s, four words
STORY = CLIPS["story"]  # about 56 s, ten sentences with 0.6 s pauses
# The demo sample ships with the gateway (gateway/samples/README.md says how it was made).
HELLO = Clip(
    "hello",
    "Hello, and welcome to the transcription gateway. This short recording was made for the demo, "
    "so that anyone can try the service without a network connection.",
    ROOT / "gateway" / "samples" / "hello.wav",
)


# A little over a minute when joined with half-second gaps: what the fault test streams.
MINUTE = (STORY, WEATHER, TRAIN, THANKS, HELLO)


def silence(seconds: float) -> bytes:
    return b"\0\0" * round(RATE * seconds)


def joined(clips: tuple[Clip, ...], *, gap_s: float = 0.5) -> bytes:
    """The clips' PCM back to back, each followed by ``gap_s`` of silence."""
    return b"".join(clip.pcm() + silence(gap_s) for clip in clips)
